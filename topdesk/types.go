package topdesk

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Ref points at a searchlist entry or another TOPdesk object. TOPdesk accepts
// either an id or (for searchlists) an exact name, never both: when ID is set
// only the id is sent.
type Ref struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

// MarshalJSON sends {"id": …} when the id is known, else {"name": …}.
func (r Ref) MarshalJSON() ([]byte, error) {
	if r.ID != "" {
		return json.Marshal(struct {
			ID string `json:"id"`
		}{r.ID})
	}
	return json.Marshal(struct {
		Name string `json:"name"`
	}{r.Name})
}

// Caller is an unregistered caller (TOPdesk's CallerCreate), typically
// {"dynamicName": "Monitoring"}.
type Caller struct {
	DynamicName string `json:"dynamicName,omitempty"`
	Email       string `json:"email,omitempty"`
	PhoneNumber string `json:"phoneNumber,omitempty"`
}

// CallerLookup selects a registered person by exactly one of id or email.
type CallerLookup struct {
	ID    string `json:"id,omitempty"`
	Email string `json:"email,omitempty"`
}

// IncidentRequest is the body of a create (POST) or update (PATCH/PUT).
// Zero-valued fields are omitted; pointers distinguish "false" from "unset".
type IncidentRequest struct {
	CallerLookup             *CallerLookup `json:"callerLookup,omitempty"`
	Caller                   *Caller       `json:"caller,omitempty"`
	Status                   string        `json:"status,omitempty"`
	BriefDescription         string        `json:"briefDescription,omitempty"`
	Request                  string        `json:"request,omitempty"`
	Action                   string        `json:"action,omitempty"`
	ActionInvisibleForCaller *bool         `json:"actionInvisibleForCaller,omitempty"`
	EntryType                *Ref          `json:"entryType,omitempty"`
	CallType                 *Ref          `json:"callType,omitempty"`
	Category                 *Ref          `json:"category,omitempty"`
	Subcategory              *Ref          `json:"subcategory,omitempty"`
	ExternalNumber           string        `json:"externalNumber,omitempty"`
	Impact                   *Ref          `json:"impact,omitempty"`
	Urgency                  *Ref          `json:"urgency,omitempty"`
	Priority                 *Ref          `json:"priority,omitempty"`
	Duration                 *Ref          `json:"duration,omitempty"`
	Operator                 *Ref          `json:"operator,omitempty"`
	OperatorGroup            *Ref          `json:"operatorGroup,omitempty"`
	ProcessingStatus         *Ref          `json:"processingStatus,omitempty"`
	Completed                *bool         `json:"completed,omitempty"`
	Closed                   *bool         `json:"closed,omitempty"`
	ClosureCode              *Ref          `json:"closureCode,omitempty"`
	// Object links the incident to an object (asset), by id.
	Object *Ref `json:"object,omitempty"`
	// MajorCall marks a new incident as a major call; MajorCallObject
	// links an incident to one (by id).
	MajorCall       *bool `json:"majorCall,omitempty"`
	MajorCallObject *Ref  `json:"majorCallObject,omitempty"`
}

// Incident is the part of TOPdesk's incident read model that alertdesk uses.
type Incident struct {
	ID               string `json:"id"`
	Number           string `json:"number"`
	Status           string `json:"status,omitempty"`
	BriefDescription string `json:"briefDescription,omitempty"`
	ExternalNumber   string `json:"externalNumber,omitempty"`
	Closed           bool   `json:"closed"`
	ClosedDate       *Time  `json:"closedDate,omitempty"`
	Completed        bool   `json:"completed"`
	CompletedDate    *Time  `json:"completedDate,omitempty"`
	CreationDate     *Time  `json:"creationDate,omitempty"`
	ModificationDate *Time  `json:"modificationDate,omitempty"`
	ProcessingStatus *Ref   `json:"processingStatus,omitempty"`
	Priority         *Ref   `json:"priority,omitempty"`
	Category         *Ref   `json:"category,omitempty"`
	Subcategory      *Ref   `json:"subcategory,omitempty"`
	OperatorGroup    *Ref   `json:"operatorGroup,omitempty"`
	// Two-way sync: how an operator closed it, and who changed it last.
	ClosureCode *Ref `json:"closureCode,omitempty"`
	Modifier    *Ref `json:"modifier,omitempty"`
	// The fields an update may write besides priority (updates.fields),
	// and the linked object.
	Impact  *Ref `json:"impact,omitempty"`
	Urgency *Ref `json:"urgency,omitempty"`
	Object  *Ref `json:"object,omitempty"`
}

// Time is a TOPdesk timestamp. TOPdesk writes "2024-05-20T10:00:00.000+0000"
// (no colon in the offset); RFC 3339 is accepted too. It is written back in
// TOPdesk's own layout.
type Time struct{ time.Time }

// Layout is the timestamp layout TOPdesk uses in JSON.
const Layout = "2006-01-02T15:04:05.000-0700"

var timeLayouts = []string{Layout, time.RFC3339Nano, "2006-01-02T15:04:05-0700", "2006-01-02"}

// UnmarshalJSON accepts TOPdesk's layout, RFC 3339 and null.
func (t *Time) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		t.Time = time.Time{}
		return nil
	}
	for _, l := range timeLayouts {
		if v, err := time.Parse(l, s); err == nil {
			t.Time = v
			return nil
		}
	}
	return fmt.Errorf("topdesk: cannot parse time %q", s)
}

// MarshalJSON writes TOPdesk's layout.
func (t Time) MarshalJSON() ([]byte, error) {
	return json.Marshal(t.Format(Layout))
}

// Field names a request field whose value is looked up by name: a searchlist
// (category, priority, …), an operator group or operator, or a caller e-mail.
type Field string

// The fields a mapping can name. The values are TOPdesk's JSON field names.
const (
	FieldProcessingStatus Field = "processingStatus"
	FieldPriority         Field = "priority"
	FieldImpact           Field = "impact"
	FieldUrgency          Field = "urgency"
	FieldCategory         Field = "category"
	FieldSubcategory      Field = "subcategory"
	FieldCallType         Field = "callType"
	FieldEntryType        Field = "entryType"
	FieldClosureCode      Field = "closureCode"
	FieldDuration         Field = "duration"
	FieldOperatorGroup    Field = "operatorGroup"
	FieldOperator         Field = "operator"
	FieldCallerEmail      Field = "callerLookup.email"
)

// NameRef is one TOPdesk name a mapping uses: the field, the name, and for a
// subcategory the category it belongs to (empty when not given).
type NameRef struct {
	Field    Field
	Name     string
	Category string
}
