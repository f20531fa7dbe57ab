package topdesktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Operators: what a person working in TOPdesk does to an incident, through
// the Go methods below or the admin API (POST /_sim/incidents/{id or
// number}/{edit|close|reopen|action|archive|unarchive|delete}). Each change
// is validated as TOPdesk validates the API's, sets modificationDate and the
// operator as modifier, is listed in the incident's history as an
// operator's (the page shows it), and calls the automated action
// (Options.Callback).

// OperatorError is why an operator's change was refused: Status is the HTTP
// status the admin API answers (404 no such incident, 400 an invalid change,
// 500 a state file that cannot be written), Messages TOPdesk's messages.
type OperatorError struct {
	Status   int
	Messages []string
}

func (e *OperatorError) Error() string {
	return fmt.Sprintf("topdesktest: operator change refused (%d): %s", e.Status, strings.Join(e.Messages, "; "))
}

// operatorError turns the outcome of a change into an *OperatorError, or
// nil when it succeeded.
func operatorError(key string, found bool, errs []string, err error) error {
	switch {
	case !found:
		return &OperatorError{Status: http.StatusNotFound, Messages: []string{fmt.Sprintf("No incident found with id or number '%s'.", key)}}
	case len(errs) > 0:
		return &OperatorError{Status: http.StatusBadRequest, Messages: errs}
	case err != nil:
		return &OperatorError{Status: http.StatusInternalServerError, Messages: []string{err.Error()}}
	}
	return nil
}

// operatorActor is the person login names; "" is the tenant's first
// operator that is not the API user.
func (s *Sim) operatorActor(login string) actor {
	if login == "" {
		s.mu.Lock()
		api := s.username
		s.mu.Unlock()
		login = "operator"
		for _, o := range s.opts.Tenant.Operators {
			if o.LoginName != "" && o.LoginName != api {
				login = o.LoginName
				break
			}
		}
	}
	return actor{login: login, operator: true}
}

// by says how key names an incident: "id" for a UUID, else "number".
func by(key string) string {
	if isUUID(key) {
		return "id"
	}
	return "number"
}

// Edit changes an incident as an operator: fields is an update body as the
// API takes it (e.g. {"priority": {"name": "P1"}, "operatorGroup": {"id":
// …}, "briefDescription": …, "action": …}). operator is the operator's login
// name ("" = the tenant's first operator that is not the API user); key the
// incident's id or number.
func (s *Sim) Edit(operator, key string, fields map[string]any) (Incident, error) {
	body, err := json.Marshal(fields)
	if err != nil {
		return Incident{}, &OperatorError{Status: http.StatusBadRequest, Messages: []string{err.Error()}}
	}
	_, found, errs, err := s.update(by(key), key, body, s.operatorActor(operator))
	return s.afterOperator(key, found, errs, err)
}

// afterOperator returns the incident after an operator's change, or the
// change's *OperatorError.
func (s *Sim) afterOperator(key string, found bool, errs []string, err error) (Incident, error) {
	if err := operatorError(key, found, errs, err); err != nil {
		return Incident{}, err
	}
	inc, _ := s.Incident(key)
	return inc, nil
}

// Close closes an incident as an operator, with this closure code (a name
// in the tenant; "" = none) and the tenant's first closing processing
// status, if it has one.
func (s *Sim) Close(operator, key, closureCode string) (Incident, error) {
	fields := map[string]any{"closed": true}
	if closureCode != "" {
		fields["closureCode"] = map[string]string{"name": closureCode}
	}
	for _, st := range s.opts.Tenant.Statuses {
		if st.Closing {
			fields["processingStatus"] = map[string]string{"id": st.ID}
			break
		}
	}
	return s.Edit(operator, key, fields)
}

// Reopen reopens a closed incident as an operator: not closed, not
// completed, the default processing status.
func (s *Sim) Reopen(operator, key string) (Incident, error) {
	fields := map[string]any{"closed": false, "completed": false}
	if st := s.cat.defaultStatus; st != nil {
		fields["processingStatus"] = map[string]string{"id": st.id}
	}
	return s.Edit(operator, key, fields)
}

// AddAction adds an action (TOPdesk's memo HTML) as an operator.
func (s *Sim) AddAction(operator, key, text string) (Incident, error) {
	return s.Edit(operator, key, map[string]any{"action": text})
}

// Archive archives an incident as an operator, with this archiving reason
// (a name in the tenant; "" = the tenant's first). From then on it is
// left out of searches without all=true, GET still answers it (status
// firstLineArchived or secondLineArchived) and every write answers 400.
func (s *Sim) Archive(operator, key, reason string) (Incident, error) {
	if reason == "" {
		if rs := s.opts.Tenant.ArchivingReasons; len(rs) > 0 {
			reason = rs[0].Name
		}
	}
	body, err := json.Marshal(map[string]string{"name": reason})
	if err != nil {
		return Incident{}, err
	}
	r, errs := s.archivingReason(body)
	if len(errs) > 0 {
		return Incident{}, &OperatorError{Status: http.StatusBadRequest, Messages: errs}
	}
	_, found, errs, err := s.archive(by(key), key, r, true, s.operatorActor(operator))
	return s.afterOperator(key, found, errs, err)
}

// Unarchive restores an archived incident as an operator.
func (s *Sim) Unarchive(operator, key string) (Incident, error) {
	_, found, errs, err := s.archive(by(key), key, nil, false, s.operatorActor(operator))
	return s.afterOperator(key, found, errs, err)
}

// Delete deletes an incident as an operator: from then on the API answers
// 404 for it and no search finds it. Its partials lose their main incident.
func (s *Sim) Delete(operator, key string) error {
	a := s.operatorActor(operator)
	s.mu.Lock()
	defer s.mu.Unlock()
	inc := s.lookup(by(key), key)
	if inc == nil {
		return operatorError(key, false, nil, nil)
	}
	s.incidents = slices.DeleteFunc(s.incidents, func(i *incident) bool { return i == inc })
	delete(s.byID, inc.id)
	delete(s.byNumber, inc.number)
	s.unindex(inc)
	if m := inc.mainIncident; m != nil {
		m.partials = slices.DeleteFunc(m.partials, func(i *incident) bool { return i == inc })
	}
	for _, p := range inc.partials {
		p.mainIncident = nil
	}
	for _, i := range s.incidents {
		if i.majorCallOf == inc {
			i.majorCallOf = nil
		}
	}
	s.deleted = append(s.deleted, deletion{number: inc.number, change: change{at: s.now(), by: s.cat.operator(a.login), operator: a.operator, what: "deleted"}})
	s.notifyLocked(inc.number, a)
	return operatorError(key, true, nil, s.saveLocked())
}

// archivingReason resolves an archive request's body, {"id"} or {"name"}.
func (s *Sim) archivingReason(body []byte) (*entity, []string) {
	v, errs := s.check.ref("archivingReason", searchlist(listArchivingReasons), body)
	if len(errs) > 0 {
		return nil, errs
	}
	return v.ents[0], nil
}

// archive archives (with reason) or unarchives an incident.
func (s *Sim) archive(by, key string, reason *entity, archive bool, a actor) (out []byte, found bool, errs []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inc := s.lookup(by, key)
	switch {
	case inc == nil:
		return nil, false, nil, nil
	case inc.archived == archive:
		return nil, true, []string{fmt.Sprintf("Incident %s is already %s.", inc.number, map[bool]string{true: "archived", false: "not archived"}[archive])}, nil
	}
	inc.archived, inc.archivingReason = archive, reason
	what := "unarchived"
	if archive {
		what = "archived (" + reason.name + ")"
	}
	s.changedLocked(inc, a, s.now(), what)
	return s.render(inc, nil), true, nil, s.saveLocked()
}

// operatorRequest is the body of POST /_sim/incidents/{key}/{verb}.
type operatorRequest struct {
	// Operator is the operator's login name ("" = the tenant's first
	// operator that is not the API user).
	Operator string `json:"operator"`
	// Fields is the update body of edit.
	Fields map[string]any `json:"fields"`
	// ClosureCode is the closure code name of close.
	ClosureCode string `json:"closureCode"`
	// Text is the action of action.
	Text string `json:"text"`
	// Reason is the archiving reason name of archive.
	Reason string `json:"reason"`
}

// handleOperator serves POST /_sim/incidents/{key}/{verb}: 200 with the
// incident (the /_sim/incidents shape), 204 for delete, else the
// OperatorError's status and messages.
func (s *Sim) handleOperator(w http.ResponseWriter, r *http.Request) {
	var req operatorRequest
	if r.ContentLength != 0 {
		if err := decodeBody(r, &req); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	key := r.PathValue("key")
	var inc Incident
	var err error
	switch verb := r.PathValue("verb"); verb {
	case "edit":
		inc, err = s.Edit(req.Operator, key, req.Fields)
	case "close":
		inc, err = s.Close(req.Operator, key, req.ClosureCode)
	case "reopen":
		inc, err = s.Reopen(req.Operator, key)
	case "action":
		inc, err = s.AddAction(req.Operator, key, req.Text)
	case "archive":
		inc, err = s.Archive(req.Operator, key, req.Reason)
	case "unarchive":
		inc, err = s.Unarchive(req.Operator, key)
	case "delete":
		if err = s.Delete(req.Operator, key); err == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("No operator action %q: use edit, close, reopen, action, archive, unarchive or delete.", verb))
		return
	}
	if oe := (*OperatorError)(nil); errors.As(err, &oe) {
		writeError(w, oe.Status, oe.Messages...)
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, inc)
}
