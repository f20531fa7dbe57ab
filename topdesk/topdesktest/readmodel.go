package topdesktest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// readModel is TOPdesk's incident read model (the Incident schema), as the
// simulator answers a create, update, get or search. Fields without a
// simulated value are always null (nil), 0 or false; fields the simulator
// only stores are echoed as sent (other).
type readModel struct {
	ID                             string            `json:"id"`
	Status                         string            `json:"status"`
	Number                         string            `json:"number"`
	Request                        string            `json:"request"`
	Requests                       string            `json:"requests"`
	Action                         string            `json:"action"`
	Attachments                    string            `json:"attachments"`
	Caller                         map[string]any    `json:"caller"`
	CallerBranch                   any               `json:"callerBranch"`
	CallerLocation                 any               `json:"callerLocation"`
	BranchExtraFieldA              any               `json:"branchExtraFieldA"`
	BranchExtraFieldB              any               `json:"branchExtraFieldB"`
	BriefDescription               string            `json:"briefDescription"`
	ExternalNumber                 string            `json:"externalNumber"`
	Category                       *wireEntity       `json:"category"`
	Subcategory                    *wireEntity       `json:"subcategory"`
	CallType                       *wireEntity       `json:"callType"`
	EntryType                      *wireEntity       `json:"entryType"`
	Object                         *wireEntity       `json:"object"`
	Asset                          any               `json:"asset"`
	Branch                         json.RawMessage   `json:"branch"`
	Location                       json.RawMessage   `json:"location"`
	Impact                         *wireEntity       `json:"impact"`
	Urgency                        *wireEntity       `json:"urgency"`
	Priority                       *wireEntity       `json:"priority"`
	Duration                       *wireEntity       `json:"duration"`
	ActualDuration                 any               `json:"actualDuration"`
	TargetDate                     json.RawMessage   `json:"targetDate"`
	SLA                            json.RawMessage   `json:"sla"`
	ResponseDate                   json.RawMessage   `json:"responseDate"`
	OnHold                         json.RawMessage   `json:"onHold"`
	OnHoldDate                     any               `json:"onHoldDate"`
	OnHoldDuration                 int               `json:"onHoldDuration"`
	FeedbackMessage                json.RawMessage   `json:"feedbackMessage"`
	FeedbackRating                 json.RawMessage   `json:"feedbackRating"`
	Operator                       *wireOperator     `json:"operator"`
	OperatorGroup                  *wireEntity       `json:"operatorGroup"`
	Supplier                       json.RawMessage   `json:"supplier"`
	ProcessingStatus               *wireEntity       `json:"processingStatus"`
	Completed                      bool              `json:"completed"`
	CompletedDate                  *string           `json:"completedDate"`
	Closed                         bool              `json:"closed"`
	ClosedDate                     *string           `json:"closedDate"`
	ClosureCode                    *wireEntity       `json:"closureCode"`
	TimeSpent                      int               `json:"timeSpent"`
	TimeSpentFirstLine             int               `json:"timeSpentFirstLine"`
	TimeSpentSecondLine            int               `json:"timeSpentSecondLine"`
	TimeSpentPartial               int               `json:"timeSpentPartial"`
	TimeSpentLinkedPartials        int               `json:"timeSpentLinkedPartials"`
	TimeSpentSecondLineAndPartials int               `json:"timeSpentSecondLineAndPartials"`
	ItemCosts                      int               `json:"itemCosts"`
	ObjectCosts                    int               `json:"objectCosts"`
	Costs                          json.RawMessage   `json:"costs"`
	EscalationStatus               any               `json:"escalationStatus"`
	EscalationReason               any               `json:"escalationReason"`
	EscalationOperator             any               `json:"escalationOperator"`
	CallDate                       *string           `json:"callDate"`
	Creator                        *wireEntity       `json:"creator"`
	CreationDate                   *string           `json:"creationDate"`
	Modifier                       *wireEntity       `json:"modifier"`
	ModificationDate               *string           `json:"modificationDate"`
	ArchivingReason                *wireEntity       `json:"archivingReason"`
	MajorCall                      bool              `json:"majorCall"`
	MajorCallObject                *wireMajorCall    `json:"majorCallObject"`
	PublishToSsd                   json.RawMessage   `json:"publishToSsd"`
	Monitored                      bool              `json:"monitored"`
	Responded                      json.RawMessage   `json:"responded"`
	ExpectedTimeSpent              int               `json:"expectedTimeSpent"`
	MainIncident                   *wireIncidentRef  `json:"mainIncident"`
	PartialIncidents               []wireLink        `json:"partialIncidents"`
	OptionalFields1                json.RawMessage   `json:"optionalFields1"`
	OptionalFields2                json.RawMessage   `json:"optionalFields2"`
	ExternalLinks                  []json.RawMessage `json:"externalLinks"`
}

// wireEntity is how an incident shows a tenant entity.
type wireEntity struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// wireOperator is the incident's operator: the operator, else the operator
// group, with which of the two it is.
type wireOperator struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

type wireIncidentRef struct {
	ID     string `json:"id"`
	Number string `json:"number"`
}

// wireMajorCall is the major call an incident is linked to; name is its
// number.
type wireMajorCall struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	MajorIncident bool   `json:"majorIncident"`
}

type wireLink struct {
	Link string `json:"link"`
}

func wireRef(e *entity) *wireEntity {
	if e == nil {
		return nil
	}
	return &wireEntity{ID: e.id, Name: e.name}
}

// wireTime is t in TOPdesk's layout, or nil (null) for the zero time.
func wireTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(topdeskTimeLayout)
	return &s
}

// readModel returns inc's read model. The caller holds s.mu.
func (s *Sim) readModel(inc *incident) *readModel {
	link := s.baseURL + "/tas/api/incidents/id/" + inc.id
	// other is a field stored as sent, or its default when it never was.
	other := func(k, def string) json.RawMessage {
		if raw, ok := inc.other[k]; ok {
			return raw
		}
		return json.RawMessage(def)
	}
	m := &readModel{
		ID: inc.id, Status: inc.line, Number: inc.number, Request: inc.requestText,
		Requests: link + "/requests", Action: link + "/actions", Attachments: link + "/attachments",
		BriefDescription: inc.briefDescription, ExternalNumber: inc.externalNumber,
		Category: wireRef(inc.refs["category"]), Subcategory: wireRef(inc.refs["subcategory"]),
		CallType: wireRef(inc.refs["callType"]), EntryType: wireRef(inc.refs["entryType"]),
		Object: wireRef(inc.refs["object"]), Branch: other("branch", "null"), Location: other("location", "null"),
		Impact: wireRef(inc.refs["impact"]), Urgency: wireRef(inc.refs["urgency"]),
		Priority: wireRef(inc.refs["priority"]), Duration: wireRef(inc.refs["duration"]),
		TargetDate: other("targetDate", "null"), SLA: other("sla", "null"), ResponseDate: other("responseDate", "null"),
		OnHold: other("onHold", "false"), FeedbackMessage: other("feedbackMessage", "null"),
		FeedbackRating: other("feedbackRating", "null"), OperatorGroup: wireRef(inc.refs["operatorGroup"]),
		Supplier: other("supplier", "null"), ProcessingStatus: wireRef(inc.refs["processingStatus"]),
		Completed: inc.completed, CompletedDate: wireTime(inc.completedDate),
		Closed: inc.closed, ClosedDate: wireTime(inc.closedDate), ClosureCode: wireRef(inc.refs["closureCode"]),
		Costs:    other("costs", "0"),
		CallDate: wireTime(inc.callDate), Creator: wireRef(inc.creator), CreationDate: wireTime(inc.creationDate),
		Modifier: wireRef(inc.modifier), ModificationDate: wireTime(inc.modificationDate),
		ArchivingReason: wireRef(inc.archivingReason), MajorCall: inc.majorCall,
		PublishToSsd: other("publishToSsd", "false"),
		Responded:    other("responded", "false"), PartialIncidents: []wireLink{},
		OptionalFields1: other("optionalFields1", "null"), OptionalFields2: other("optionalFields2", "null"),
		ExternalLinks: []json.RawMessage{},
	}
	if inc.archived {
		m.Status += "Archived"
	}
	if c := inc.caller; c != nil {
		m.Caller = map[string]any{"id": nil, "dynamicName": c.dynamicName, "email": c.email, "phoneNumber": c.phone, "mobileNumber": c.mobile}
		if c.person != nil {
			m.Caller["id"] = c.person.id
		}
		for k, raw := range c.extra {
			m.Caller[k] = raw
		}
	}
	if o := inc.refs["operator"]; o != nil {
		m.Operator = &wireOperator{ID: o.id, Name: o.name, Status: "operator"}
	} else if g := inc.refs["operatorGroup"]; g != nil {
		m.Operator = &wireOperator{ID: g.id, Name: g.name, Status: "operatorGroup"}
	}
	if mc := inc.majorCallOf; mc != nil {
		m.MajorCallObject = &wireMajorCall{ID: mc.id, Name: mc.number, MajorIncident: true}
	}
	if mi := inc.mainIncident; mi != nil {
		m.MainIncident = &wireIncidentRef{ID: mi.id, Number: mi.number}
	}
	for _, p := range inc.partials {
		m.PartialIncidents = append(m.PartialIncidents, wireLink{Link: s.baseURL + "/tas/api/incidents/id/" + p.id})
	}
	if raw, ok := inc.other["externalLink"]; ok {
		m.ExternalLinks = append(m.ExternalLinks, raw)
	}
	return m
}

// readModelFields maps the name of each read model property, which fields=
// may ask for, to its field in readModel.
func readModelFields() map[string]int {
	t := reflect.TypeFor[readModel]()
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		m[name] = i
	}
	return m
}

// render encodes inc's read model, limited to the properties fields names
// when it is not nil (in name order, then). The caller holds s.mu.
func (s *Sim) render(inc *incident, fields []string) json.RawMessage {
	var v any = s.readModel(inc)
	if fields != nil {
		all := reflect.ValueOf(v).Elem()
		some := make(map[string]any, len(fields))
		for _, f := range fields {
			some[f] = all.Field(s.modelFields[f]).Interface()
		}
		v = some
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Every value is a string, number, bool, nil or JSON the simulator
		// checked; only a bug gets here.
		panic(fmt.Sprintf("topdesktest: encode incident %s: %v", inc.number, err))
	}
	return b
}
