package topdesk

import (
	"errors"
	"unicode/utf16"
)

// The maxLength of the string fields IncidentRequest can carry, from
// TOPdesk's IncidentCreateBody, IncidentUpdateBody and CallerCreate schemas.
const (
	MaxBriefDescription  = 80
	MaxExternalNumber    = 60
	MaxCallerDynamicName = 109
	MaxCallerEmail       = 100
	MaxCallerPhoneNumber = 25
)

// Validate checks the request against the limits TOPdesk enforces, so that
// a request TOPdesk would refuse is not sent: string lengths (in characters)
// give a *LimitError; a callerLookup without exactly one key, both caller and
// callerLookup, or an unknown status give a *ValidationError. All problems
// are returned, joined with errors.Join. CreateIncident and UpdateIncident
// call it before sending.
func (in *IncidentRequest) Validate() error {
	if in == nil {
		return &ValidationError{Field: "request", Reason: "is nil"}
	}
	var errs []error
	limit := func(field, v string, maxLen int) {
		if len(v) <= maxLen { // bytes >= UTF-16 units: the common case needs no count
			return
		}
		// TOPdesk is a Java application: it counts UTF-16 code units, so a
		// character outside the Basic Multilingual Plane counts twice.
		n := 0
		for _, r := range v {
			n += utf16.RuneLen(r)
		}
		if n > maxLen {
			errs = append(errs, &LimitError{Field: field, Length: n, Max: maxLen})
		}
	}
	limit("briefDescription", in.BriefDescription, MaxBriefDescription)
	limit("externalNumber", in.ExternalNumber, MaxExternalNumber)
	if c := in.Caller; c != nil {
		limit("caller.dynamicName", c.DynamicName, MaxCallerDynamicName)
		limit("caller.email", c.Email, MaxCallerEmail)
		limit("caller.phoneNumber", c.PhoneNumber, MaxCallerPhoneNumber)
	}
	if cl := in.CallerLookup; cl != nil {
		switch {
		case cl.ID == "" && cl.Email == "":
			errs = append(errs, &ValidationError{Field: "callerLookup", Reason: "needs exactly one of id or email, got none"})
		case cl.ID != "" && cl.Email != "":
			errs = append(errs, &ValidationError{Field: "callerLookup", Reason: "needs exactly one of id or email, got both"})
		}
		if in.Caller != nil {
			errs = append(errs, &ValidationError{Field: "caller", Reason: "must not be set together with callerLookup"})
		}
	}
	switch in.Status {
	case "", "firstLine", "secondLine", "partial":
	default:
		errs = append(errs, &ValidationError{Field: "status", Reason: `must be "firstLine", "secondLine" or "partial", got "` + in.Status + `"`})
	}
	return errors.Join(errs...)
}

// validateUpdate adds the rules of IncidentUpdateBody to Validate.
func (in *IncidentRequest) validateUpdate() error {
	err := in.Validate()
	if in != nil && in.Status != "" {
		err = errors.Join(err, &ValidationError{Field: "status", Reason: "cannot be changed by an update (TOPdesk uses escalate/deescalate for that)"})
	}
	return err
}
