package topdesk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// findPageSize is the page size of incident searches. A search by
// externalNumber normally finds zero or one incident, so one page suffices.
const findPageSize = 100

// findFields limits incident searches to the fields Incident decodes; the
// full read model is slow to produce on large tenants.
const findFields = "id,number,status,briefDescription,externalNumber,closed,closedDate,completed,completedDate," +
	"creationDate,modificationDate,processingStatus,priority,category,subcategory,operatorGroup,closureCode,modifier"

// Version returns the version of TOPdesk's incident REST API, e.g. "3.8.5".
// It is the cheapest authenticated call, so it doubles as a credentials
// check: a 401 or 403 gives an error for which IsAuth is true.
func (c *Client) Version(ctx context.Context) (string, error) {
	var v struct {
		Version string `json:"version"`
	}
	u := c.endpoint("/version")
	if _, err := c.getJSON(ctx, u, &v); err != nil {
		return "", err
	}
	if v.Version == "" {
		return "", fmt.Errorf("topdesk: GET %s: answer has no version", u.EscapedPath())
	}
	return v.Version, nil
}

// CreateIncident creates an incident (POST /tas/api/incidents) and returns it
// as TOPdesk stored it. The request is validated first (see Validate); a
// *LimitError or *ValidationError means nothing was sent. When
// IsOutcomeUnknown(err) is true the incident may exist: find it by its
// externalNumber before creating it again.
func (c *Client) CreateIncident(ctx context.Context, in *IncidentRequest) (*Incident, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("topdesk: encode incident: %w", err)
	}
	u := c.endpoint("/incidents")
	inc := new(Incident)
	status, err := c.do(ctx, http.MethodPost, u, body, inc)
	if err != nil {
		return nil, err
	}
	if (status != http.StatusCreated && status != http.StatusOK) || inc.ID == "" {
		// The POST was answered with success, so the incident may exist.
		return nil, &requestError{Method: http.MethodPost, Path: u.EscapedPath(), Sent: true,
			Err: fmt.Errorf("unexpected answer %d %s without an incident id", status, http.StatusText(status))}
	}
	return inc, nil
}

// UpdateIncident changes the incident with the given id (a partial update:
// only the fields set in the request change) and returns the updated
// incident. Setting Action adds an action entry. It uses PATCH
// /tas/api/incidents/id/{id}; when TOPdesk answers 405 (older on-premises
// versions) it repeats the update with PUT and uses PUT from then on. A 404
// gives an error matching ErrNotFound. The request is validated first; Status
// cannot be changed by an update.
func (c *Client) UpdateIncident(ctx context.Context, id string, in *IncidentRequest) (*Incident, error) {
	if id == "" {
		return nil, &ValidationError{Field: "id", Reason: "incident id is empty"}
	}
	if err := in.validateUpdate(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("topdesk: encode incident update: %w", err)
	}
	u := c.endpoint("/incidents/id", id)
	if !c.usePut.Load() {
		inc, err := c.update(ctx, http.MethodPatch, u, body)
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusMethodNotAllowed {
			return inc, err
		}
		c.usePut.Store(true)
	}
	return c.update(ctx, http.MethodPut, u, body)
}

func (c *Client) update(ctx context.Context, method string, u *url.URL, body []byte) (*Incident, error) {
	inc := new(Incident)
	status, err := c.do(ctx, method, u, body, inc)
	if err != nil {
		return nil, err
	}
	if status == http.StatusNoContent || inc.ID == "" {
		// Success without a body: the update was applied, the result is unknown.
		return nil, &requestError{Method: method, Path: u.EscapedPath(), Sent: true,
			Err: fmt.Errorf("unexpected answer %d %s without an incident", status, http.StatusText(status))}
	}
	return inc, nil
}

// GetIncident returns the incident with the given id (GET
// /tas/api/incidents/id/{id}). A 404 gives an error matching ErrNotFound.
func (c *Client) GetIncident(ctx context.Context, id string) (*Incident, error) {
	if id == "" {
		return nil, &ValidationError{Field: "id", Reason: "incident id is empty"}
	}
	return c.getIncident(ctx, "/incidents/id", id)
}

// GetIncidentByNumber returns the incident with the given number, e.g.
// "I 2611 001" (GET /tas/api/incidents/number/{number}). A 404 gives an
// error matching ErrNotFound.
func (c *Client) GetIncidentByNumber(ctx context.Context, number string) (*Incident, error) {
	if number == "" {
		return nil, &ValidationError{Field: "number", Reason: "incident number is empty"}
	}
	return c.getIncident(ctx, "/incidents/number", number)
}

func (c *Client) getIncident(ctx context.Context, path, key string) (*Incident, error) {
	inc := new(Incident)
	status, err := c.getJSON(ctx, c.endpoint(path, key), inc)
	if err != nil {
		return nil, err
	}
	if status == http.StatusNoContent || inc.ID == "" {
		return nil, fmt.Errorf("topdesk: GET %s: answer %d has no incident", c.endpoint(path, key).EscapedPath(), status)
	}
	return inc, nil
}

// FindIncidents returns the incidents, archived ones included, whose
// externalNumber is exactly externalNumber. It searches with FIQL
// (query=externalNumber=='…'&all=true) and follows 206 paging; when TOPdesk
// rejects the FIQL form with a 400 (older versions), it uses the legacy
// external_number parameter instead and keeps doing so. No match gives an
// empty slice and no error.
func (c *Client) FindIncidents(ctx context.Context, externalNumber string) ([]Incident, error) {
	if externalNumber == "" {
		return nil, &ValidationError{Field: "externalNumber", Reason: "is empty"}
	}
	var found []Incident
	if !c.legacyFind.Load() {
		var err error
		found, err = getPaged[Incident](ctx, c, "/incidents", []param{
			{"query", "externalNumber==" + fiqlQuote(externalNumber)},
			{"all", "true"},
			{"fields", findFields},
		}, "pageStart", "pageSize", findPageSize)
		var ae *APIError
		if err != nil && !(errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest) {
			return nil, fmt.Errorf("find incidents by externalNumber: %w", err)
		}
		if err != nil {
			legacy, lerr := c.findLegacy(ctx, externalNumber)
			if lerr != nil {
				return nil, fmt.Errorf("find incidents by externalNumber (FIQL rejected: %v): %w", err, lerr)
			}
			c.legacyFind.Store(true)
			found = legacy
		}
	} else {
		var err error
		if found, err = c.findLegacy(ctx, externalNumber); err != nil {
			return nil, fmt.Errorf("find incidents by externalNumber: %w", err)
		}
	}
	// Keep exact matches only: FIQL may compare case-insensitively, and an
	// old server may ignore a filter it does not know.
	out := found[:0]
	for _, inc := range found {
		if inc.ExternalNumber == externalNumber {
			out = append(out, inc)
		}
	}
	return out, nil
}

func (c *Client) findLegacy(ctx context.Context, externalNumber string) ([]Incident, error) {
	return getPaged[Incident](ctx, c, "/incidents", []param{
		{"external_number", externalNumber},
		{"fields", findFields},
	}, "start", "page_size", findPageSize)
}

// fiqlQuote quotes a FIQL value: single quotes around it, with backslashes
// and single quotes escaped by a backslash.
func fiqlQuote(v string) string {
	if !strings.ContainsAny(v, `'\`) {
		return "'" + v + "'"
	}
	var b strings.Builder
	b.Grow(len(v) + 4)
	b.WriteByte('\'')
	for i := 0; i < len(v); i++ {
		if v[i] == '\'' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('\'')
	return b.String()
}

// listPageSize is the page size of ListIncidentsByPrefix, the largest
// TOPdesk allows for incidents.
const listPageSize = 10000

// ListIncidentsByPrefix returns every incident, archived ones included,
// whose externalNumber starts with prefix, following 206 paging. It needs
// FIQL on externalNumber (=sw=); a TOPdesk that rejects the query answers
// with an *APIError (400), and there is no legacy fallback: callers must
// cope without the list.
func (c *Client) ListIncidentsByPrefix(ctx context.Context, prefix string) ([]Incident, error) {
	if prefix == "" {
		return nil, &ValidationError{Field: "externalNumber", Reason: "prefix is empty"}
	}
	found, err := getPaged[Incident](ctx, c, "/incidents", []param{
		{"query", "externalNumber=sw=" + fiqlQuote(prefix)},
		{"all", "true"},
		{"fields", findFields},
	}, "pageStart", "pageSize", listPageSize)
	if err != nil {
		return nil, fmt.Errorf("list incidents by externalNumber prefix: %w", err)
	}
	out := found[:0]
	for _, inc := range found {
		if strings.HasPrefix(inc.ExternalNumber, prefix) {
			out = append(out, inc)
		}
	}
	return out, nil
}
