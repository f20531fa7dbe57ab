package topdesk

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// objectPageSize is the page size of the asset list.
const objectPageSize = 100

// ObjectsByName returns the objects (assets) that an incident's "object"
// can link to whose name is name, compared case-insensitively; none is an
// empty slice and no error. It asks the asset management API (GET
// /tas/api/assetmgmt/assets?nameFragment=…), which finds names containing
// the fragment, pages through its answers ({"dataSet": [{"id", "text"}]})
// and keeps the exact matches. The returned Option names are the assets'
// names. A tenant without asset management, or an operator without the
// permission to read assets, answers 4xx: the *APIError says so.
func (c *Client) ObjectsByName(ctx context.Context, name string) ([]Option, error) {
	if strings.TrimSpace(name) == "" {
		return nil, &ValidationError{Field: "object", Reason: "name is empty"}
	}
	type asset struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	}
	var out []Option
	for page := range maxPages {
		u := c.endpoint("/assetmgmt/assets")
		u.RawQuery = encodeQuery([]param{
			{"nameFragment", name},
			{"pageStart", strconv.Itoa(page * objectPageSize)},
			{"pageSize", strconv.Itoa(objectPageSize)},
		})
		var body struct {
			DataSet []asset `json:"dataSet"`
		}
		if _, err := c.getJSON(ctx, u, &body); err != nil {
			return nil, fmt.Errorf("find object %q: %w", name, err)
		}
		for _, a := range body.DataSet {
			if strings.EqualFold(a.Text, name) {
				out = append(out, Option{ID: a.ID, Name: a.Text})
			}
		}
		if len(body.DataSet) < objectPageSize {
			return out, nil
		}
	}
	return nil, fmt.Errorf("find object %q: more than %d pages of assets", name, maxPages)
}
