package topdesk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// lookupPageSize is the page size of the supporting-files lists (operators,
// operator groups, persons), whose maximum is 100 on many versions.
const lookupPageSize = 100

// Option is one entry of a searchlist or another named TOPdesk object: its
// id and its name.
type Option struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Subcategory is an incident subcategory with the category it belongs to.
type Subcategory struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Category Option `json:"category"`
}

// searchlistPath returns the list endpoint of a searchlist field.
func searchlistPath(f Field) (string, bool) {
	switch f {
	case FieldProcessingStatus:
		return "/incidents/statuses", true
	case FieldPriority:
		return "/incidents/priorities", true
	case FieldImpact:
		return "/incidents/impacts", true
	case FieldUrgency:
		return "/incidents/urgencies", true
	case FieldCategory:
		return "/incidents/categories", true
	case FieldSubcategory:
		return "/incidents/subcategories", true
	case FieldCallType:
		return "/incidents/call_types", true
	case FieldEntryType:
		return "/incidents/entry_types", true
	case FieldClosureCode:
		return "/incidents/closure_codes", true
	case FieldDuration:
		return "/incidents/durations", true
	}
	return "", false
}

// IsSearchlist reports whether f is an incident searchlist that Searchlist
// can list (operator groups, operators and caller e-mails are not).
func IsSearchlist(f Field) bool {
	_, ok := searchlistPath(f)
	return ok
}

// Searchlist returns the entries of an incident searchlist: processing
// statuses, priorities, impacts, urgencies, categories, subcategories (without
// their categories; see Subcategories), call types, entry types, closure codes
// or durations. Any other field gives an error.
func (c *Client) Searchlist(ctx context.Context, f Field) ([]Option, error) {
	path, ok := searchlistPath(f)
	if !ok {
		return nil, fmt.Errorf("topdesk: %q is not an incident searchlist", string(f))
	}
	var opts []Option
	if _, err := c.getJSON(ctx, c.endpoint(path), &opts); err != nil {
		return nil, fmt.Errorf("list %s: %w", f, err)
	}
	return opts, nil
}

// Subcategories returns every incident subcategory with its category.
func (c *Client) Subcategories(ctx context.Context) ([]Subcategory, error) {
	var subs []Subcategory
	if _, err := c.getJSON(ctx, c.endpoint("/incidents/subcategories"), &subs); err != nil {
		return nil, fmt.Errorf("list subcategories: %w", err)
	}
	return subs, nil
}

// OperatorGroups returns the operator groups named name (compared
// case-insensitively), or every operator group when name is empty. It
// queries with FIQL (groupName=='…'); when TOPdesk rejects the query with a
// 400 (older versions) it lists every group and filters locally. The
// returned Option names are the groups' groupName.
func (c *Client) OperatorGroups(ctx context.Context, name string) ([]Option, error) {
	type group struct {
		ID        string `json:"id"`
		GroupName string `json:"groupName"`
	}
	groups, err := lookupByName[group](ctx, c, "/operatorgroups", "groupName", name, func(g group) string { return g.GroupName })
	if err != nil {
		return nil, fmt.Errorf("list operator groups: %w", err)
	}
	out := make([]Option, len(groups))
	for i, g := range groups {
		out[i] = Option{ID: g.ID, Name: g.GroupName}
	}
	return out, nil
}

// Operators returns the operators whose dynamicName (the display name, e.g.
// "Doe, Jane") is name (compared case-insensitively), or every operator when
// name is empty. It falls back like OperatorGroups.
func (c *Client) Operators(ctx context.Context, name string) ([]Option, error) {
	type operator struct {
		ID          string `json:"id"`
		DynamicName string `json:"dynamicName"`
	}
	ops, err := lookupByName[operator](ctx, c, "/operators", "dynamicName", name, func(o operator) string { return o.DynamicName })
	if err != nil {
		return nil, fmt.Errorf("list operators: %w", err)
	}
	out := make([]Option, len(ops))
	for i, o := range ops {
		out[i] = Option{ID: o.ID, Name: o.DynamicName}
	}
	return out, nil
}

// lookupByName lists a supporting-files resource filtered by one text
// field. A 400 on the FIQL query makes it list everything and filter
// locally.
func lookupByName[T any](ctx context.Context, c *Client, path, field, name string, nameOf func(T) string) ([]T, error) {
	if name == "" {
		return getPaged[T](ctx, c, path, nil, "start", "page_size", lookupPageSize)
	}
	items, err := getPaged[T](ctx, c, path, []param{{"query", field + "==" + fiqlQuote(name)}}, "start", "page_size", lookupPageSize)
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest {
		items, err = getPaged[T](ctx, c, path, nil, "start", "page_size", lookupPageSize)
	}
	if err != nil {
		return nil, err
	}
	out := items[:0]
	for _, it := range items {
		if strings.EqualFold(nameOf(it), name) {
			out = append(out, it)
		}
	}
	return out, nil
}

// PersonsByEmail returns the persons (registered callers) whose e-mail
// address is email (compared case-insensitively). The returned Option names
// are the persons' dynamicName. It queries with FIQL (email=='…'); when
// TOPdesk rejects the query with a 400 it uses the legacy email parameter
// and keeps doing so.
func (c *Client) PersonsByEmail(ctx context.Context, email string) ([]Option, error) {
	if email == "" {
		return nil, &ValidationError{Field: "email", Reason: "is empty"}
	}
	type person struct {
		ID          string `json:"id"`
		DynamicName string `json:"dynamicName"`
		Email       string `json:"email"`
	}
	legacy := []param{{"email", email}}
	var persons []person
	var err error
	if c.legacyPersons.Load() {
		persons, err = getPaged[person](ctx, c, "/persons", legacy, "start", "page_size", lookupPageSize)
	} else {
		persons, err = getPaged[person](ctx, c, "/persons", []param{{"query", "email==" + fiqlQuote(email)}}, "start", "page_size", lookupPageSize)
		var ae *APIError
		if errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest {
			persons, err = getPaged[person](ctx, c, "/persons", legacy, "start", "page_size", lookupPageSize)
			if err == nil {
				c.legacyPersons.Store(true)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("find persons by e-mail: %w", err)
	}
	var out []Option
	for _, p := range persons {
		if strings.EqualFold(p.Email, email) {
			out = append(out, Option{ID: p.ID, Name: p.DynamicName})
		}
	}
	return out, nil
}
