package topdesk

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// syncPageSize is the page size of ListModifiedSince: a read-back finds the
// incidents changed in one sync interval, rarely more than a page.
const syncPageSize = 1000

// syncFields are the fields ListModifiedSince asks for: those of a find,
// and what tells who closed an incident and how.
const syncFields = findFields + ",closureCode,modifier"

// ListModifiedSince returns the incidents, archived ones included, whose
// externalNumber starts with prefix and whose modificationDate is at or
// after since (zero: any), oldest change first, following 206 paging. It
// queries FIQL (externalNumber=sw=…;modificationDate=ge=…, sorted by
// modificationDate); a TOPdesk that rejects the query answers with an
// *APIError (400). The incident modified last is found again by the next
// call from its modificationDate: callers must treat a repeat as harmless.
func (c *Client) ListModifiedSince(ctx context.Context, prefix string, since time.Time) ([]Incident, error) {
	if prefix == "" {
		return nil, &ValidationError{Field: "externalNumber", Reason: "prefix is empty"}
	}
	query := "externalNumber=sw=" + fiqlQuote(prefix)
	if !since.IsZero() {
		// TOPdesk keeps times to the millisecond; ge, not gt, so that a
		// change in the same millisecond as the last one read is not lost.
		query += ";modificationDate=ge=" + since.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	found, err := getPaged[Incident](ctx, c, "/incidents", []param{
		{"query", query},
		{"all", "true"},
		{"sort", "modificationDate:asc"},
		{"fields", syncFields},
	}, "pageStart", "pageSize", syncPageSize)
	if err != nil {
		return nil, fmt.Errorf("list incidents modified since %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	out := found[:0]
	for _, inc := range found {
		if strings.HasPrefix(inc.ExternalNumber, prefix) {
			out = append(out, inc)
		}
	}
	return out, nil
}
