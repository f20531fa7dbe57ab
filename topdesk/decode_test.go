package topdesk

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/alertdesk/alertdesk/topdesk/topdesktest"
)

// readModelBody is the simulator's answer to a create: TOPdesk's whole
// incident read model, of which Incident keeps a few fields.
const readModelBody = `{"id":"8cf32ff5-a2ba-4041-b6e8-d8bbddb6cbc7","status":"firstLine","number":"I 2611 001",` +
	`"request":"Free space below 3%.\nHost: db-7\nMount: /",` +
	`"requests":"https://example.topdesk.net/tas/api/incidents/id/8cf32ff5-a2ba-4041-b6e8-d8bbddb6cbc7/requests",` +
	`"action":"https://example.topdesk.net/tas/api/incidents/id/8cf32ff5-a2ba-4041-b6e8-d8bbddb6cbc7/actions",` +
	`"attachments":"https://example.topdesk.net/tas/api/incidents/id/8cf32ff5-a2ba-4041-b6e8-d8bbddb6cbc7/attachments",` +
	`"caller":{"dynamicName":"Monitoring","email":"","id":null,"mobileNumber":"","phoneNumber":""},"callerBranch":null,` +
	`"callerLocation":null,"branchExtraFieldA":null,"branchExtraFieldB":null,"briefDescription":"Disk / at 97% on db-7",` +
	`"externalNumber":"alertdesk-5d41402abc4b2a76b9719d911017c592",` +
	`"category":{"id":"4ca6dcea-bd17-52bf-bc61-020bea9ace8b","name":"Databases"},` +
	`"subcategory":{"id":"22139e76-9132-5df8-aa0a-56f4859ab82d","name":"PostgreSQL"},"callType":null,"entryType":null,` +
	`"object":null,"asset":null,"branch":null,"location":null,"impact":null,"urgency":null,` +
	`"priority":{"id":"b87f82b5-31bb-569e-8386-86ab0fca4fdc","name":"P1"},"duration":null,"actualDuration":null,` +
	`"targetDate":null,"sla":null,"responseDate":null,"onHold":false,"onHoldDate":null,"onHoldDuration":0,` +
	`"feedbackMessage":null,"feedbackRating":null,"operator":null,"operatorGroup":null,"supplier":null,` +
	`"processingStatus":{"id":"0dfefde4-1fec-52a0-8479-cd5e3d62a611","name":"Logged"},"completed":false,` +
	`"completedDate":null,"closed":false,"closedDate":null,"closureCode":null,"timeSpent":0,"timeSpentFirstLine":0,` +
	`"timeSpentSecondLine":0,"timeSpentPartial":0,"timeSpentLinkedPartials":0,"timeSpentSecondLineAndPartials":0,` +
	`"itemCosts":0,"objectCosts":0,"costs":0,"escalationStatus":null,"escalationReason":null,"escalationOperator":null,` +
	`"callDate":"2026-11-23T14:46:41.252+0000",` +
	`"creator":{"id":"3e86d67d-0642-5e80-9bee-072869340b50","name":"Alertdesk, API"},` +
	`"creationDate":"2026-11-23T14:46:41.252+0000",` +
	`"modifier":{"id":"3e86d67d-0642-5e80-9bee-072869340b50","name":"Alertdesk, API"},` +
	`"modificationDate":"2026-11-23T14:46:41.252+0000","archivingReason":null,"majorCall":false,"majorCallObject":null,` +
	`"publishToSsd":false,"monitored":false,"responded":false,"expectedTimeSpent":0,"mainIncident":null,` +
	`"partialIncidents":[],"optionalFields1":null,"optionalFields2":null,"externalLinks":[]}`

// listElement is one incident of the simulator's answer to a search with
// the fields FindIncidents asks for.
const listElement = `{"id":"8cf32ff5-a2ba-4041-b6e8-d8bbddb6cbc7","status":"firstLine","number":"I 2611 001",` +
	`"briefDescription":"Disk / at 97% on db-7","externalNumber":"alertdesk-5d41402abc4b2a76b9719d911017c592",` +
	`"category":{"id":"4ca6dcea-bd17-52bf-bc61-020bea9ace8b","name":"Databases"},` +
	`"subcategory":{"id":"22139e76-9132-5df8-aa0a-56f4859ab82d","name":"PostgreSQL"},` +
	`"priority":{"id":"b87f82b5-31bb-569e-8386-86ab0fca4fdc","name":"P1"},"operatorGroup":null,` +
	`"processingStatus":{"id":"0dfefde4-1fec-52a0-8479-cd5e3d62a611","name":"Logged"},"completed":false,` +
	`"completedDate":null,"closed":false,"closedDate":null,"creationDate":"2026-11-23T14:46:41.252+0000",` +
	`"modificationDate":"2026-11-23T14:46:41.252+0000"}`

// listBody returns a search answer with n copies of listElement.
func listBody(n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(listElement+",", n), ",") + "]"
}

func mustTime(t testing.TB, s string) *Time {
	t.Helper()
	var v Time
	if err := v.UnmarshalJSON([]byte(`"` + s + `"`)); err != nil {
		t.Fatal(err)
	}
	return &v
}

// readModelIncident is what readModelBody and listElement decode to.
func readModelIncident(t testing.TB) Incident {
	created := mustTime(t, "2026-11-23T14:46:41.252+0000")
	modified := *created
	return Incident{
		ID:               "8cf32ff5-a2ba-4041-b6e8-d8bbddb6cbc7",
		Number:           "I 2611 001",
		Status:           "firstLine",
		BriefDescription: "Disk / at 97% on db-7",
		ExternalNumber:   "alertdesk-5d41402abc4b2a76b9719d911017c592",
		CreationDate:     created,
		ModificationDate: &modified,
		ProcessingStatus: &Ref{ID: "0dfefde4-1fec-52a0-8479-cd5e3d62a611", Name: "Logged"},
		Priority:         &Ref{ID: "b87f82b5-31bb-569e-8386-86ab0fca4fdc", Name: "P1"},
		Category:         &Ref{ID: "4ca6dcea-bd17-52bf-bc61-020bea9ace8b", Name: "Databases"},
		Subcategory:      &Ref{ID: "22139e76-9132-5df8-aa0a-56f4859ab82d", Name: "PostgreSQL"},
	}
}

// Outcomes of a decode, as the client tells them apart.
const (
	outcomeOK         = "ok"
	outcomeEOF        = "io.EOF"         // empty body
	outcomeCut        = "unexpected EOF" // the body ends inside the value
	outcomeSyntax     = "invalid JSON"
	outcomeValue      = "wrong value" // valid JSON that does not fit
	outcomeReadFailed = "read error"
)

// errReadFailed is the read error the tests inject.
var errReadFailed = errors.New("injected read error")

// outcome classifies an error of either decoder.
func outcome(err error) string {
	var se *syntaxError
	var jse *json.SyntaxError
	switch {
	case err == nil:
		return outcomeOK
	case err == io.EOF:
		return outcomeEOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return outcomeCut
	case errors.Is(err, errReadFailed):
		return outcomeReadFailed
	case errors.As(err, &se), errors.As(err, &jse):
		return outcomeSyntax
	}
	return outcomeValue
}

// feed is one way of handing a body to a decoder.
type feed struct {
	name   string
	reader func(body []byte) io.Reader
	size   func(body []byte) int64
}

func feeds() []feed {
	known := func(b []byte) int64 { return int64(len(b)) }
	unknown := func([]byte) int64 { return -1 }
	return []feed{
		{"whole", func(b []byte) io.Reader { return bytes.NewReader(b) }, known},
		{"byte by byte", func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }, unknown},
		{"EOF with the data", func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) }, unknown},
		{"read error halfway", func(b []byte) io.Reader {
			return io.MultiReader(bytes.NewReader(b[:len(b)/2]), iotest.ErrReader(errReadFailed))
		}, unknown},
	}
}

// oldIncident is a non-empty incident to decode into: encoding/json keeps
// what the JSON does not set and decodes into the Refs and Times it points
// at.
func oldIncident() Incident {
	return Incident{
		ID: "old-id", Number: "I 0000 001", Status: "secondLine", Closed: true,
		ClosedDate:   &Time{time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)},
		CreationDate: &Time{time.Date(2019, 1, 2, 3, 4, 5, 0, time.UTC)},
		Priority:     &Ref{ID: "old-priority", Name: "P9"},
		Category:     &Ref{Name: "Old category"},
	}
}

// target is a value to decode into; fresh returns a new, equal one each
// call.
type target struct {
	name  string
	fresh func() any
}

func targets() []target {
	return []target{
		{"new Incident", func() any { return new(Incident) }},
		{"old Incident", func() any { v := oldIncident(); return &v }},
		{"nil list", func() any { return new([]Incident) }},
		{"old list", func() any {
			// One element in use and a stale one past the length, which
			// encoding/json reuses when the array is longer.
			s := make([]Incident, 3)
			s[0], s[2] = oldIncident(), Incident{ID: "stale"}
			s = s[:1]
			return &s
		}},
	}
}

// comparison is one way of decoding a body: a feed and a target.
type comparison struct {
	feed   feed
	target target
}

// allComparisons returns every feed with every target.
func allComparisons() []comparison {
	var out []comparison
	for _, f := range feeds() {
		for _, tg := range targets() {
			out = append(out, comparison{f, tg})
		}
	}
	return out
}

// quickComparisons returns every target read whole and every feed into a
// new Incident and a nil list, for the fuzzer and large bodies.
func quickComparisons() []comparison {
	var out []comparison
	tgs := targets()
	for i, f := range feeds() {
		for j, tg := range tgs {
			if i == 0 || tg.name == "new Incident" || tg.name == "nil list" {
				out = append(out, comparison{f, tgs[j]})
			}
		}
	}
	return out
}

// checkAgainstStdlib decodes body with decodeBody and with encoding/json's
// Decoder in each of the comparisons, and reports any difference in the
// result or the kind of error. A syntax error must be reported at the byte
// encoding/json names.
func checkAgainstStdlib(t *testing.T, body []byte, cmps []comparison) {
	t.Helper()
	for _, c := range cmps {
		f, tg := c.feed, c.target
		want, got := tg.fresh(), tg.fresh()
		wantErr := json.NewDecoder(f.reader(body)).Decode(want)
		gotErr := decodeBody(f.reader(body), f.size(body), got)
		wo, gotO := outcome(wantErr), outcome(gotErr)
		if wo != gotO {
			t.Errorf("%s into %s of %q: got %s (%v), encoding/json %s (%v)", f.name, tg.name, body, gotO, gotErr, wo, wantErr)
			continue
		}
		var jse *json.SyntaxError
		var se *syntaxError
		if errors.As(wantErr, &jse) && (!errors.As(gotErr, &se) || se.Offset != jse.Offset-1) {
			t.Errorf("%s into %s of %q: got %v, encoding/json %v at offset %d", f.name, tg.name, body, gotErr, wantErr, jse.Offset-1)
		}
		if wantErr == nil && !reflect.DeepEqual(want, got) {
			t.Errorf("%s into %s of %q differs from encoding/json (-encoding/json +got):\n%s", f.name, tg.name, body, cmp.Diff(want, got))
		}
	}
}

// decodeCase is a body with what decoding it into a new Incident gives.
type decodeCase struct {
	name string
	body string
	want Incident // when wantOutcome is outcomeOK
	// wantOutcome is the kind of error, or outcomeOK.
	wantOutcome string
}

func incidentCases(t testing.TB) []decodeCase {
	at := func(s string) *Time { return mustTime(t, s) }
	deep := func(n int) string { return `{"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}` }
	return []decodeCase{
		{"read model", readModelBody, readModelIncident(t), outcomeOK},
		{"keys in any case", `{"ID":"a","NUMBER":"n","Status":"s","closeddate":"2024-05-20T10:00:00.000+0000","PRIORITY":{"Id":"p","NAME":"P1"}}`,
			Incident{ID: "a", Number: "n", Status: "s", ClosedDate: at("2024-05-20T10:00:00.000+0000"), Priority: &Ref{ID: "p", Name: "P1"}}, outcomeOK},
		{"keys folded like encoding/json", `{"ſtatus":"long s","İd":"dotted I","ıd":"dotless i","\u212Aey":"kelvin","\u212Ad":"kelvin k"}`,
			Incident{Status: "long s"}, outcomeOK},
		{"escaped key", `{"\u0069d":"a","brief\u0044escription":"b"}`, Incident{ID: "a", BriefDescription: "b"}, outcomeOK},
		{"key longer than any field", `{"idididididididididididididid":"x","id":"a"}`, Incident{ID: "a"}, outcomeOK},
		{"last duplicate wins", `{"id":"a","id":"b","closed":true,"closed":false}`, Incident{ID: "b"}, outcomeOK},
		{"null keeps a string and a bool", `{"status":"a","status":null,"closed":true,"closed":null}`,
			Incident{Status: "a", Closed: true}, outcomeOK},
		{"duplicate ref merges", `{"priority":{"id":"1","name":"P1"},"priority":{"id":"2"}}`,
			Incident{Priority: &Ref{ID: "2", Name: "P1"}}, outcomeOK},
		{"null ref", `{"priority":{"id":"1"},"priority":null}`, Incident{}, outcomeOK},
		{"null time", `{"closedDate":"2024-05-20T10:00:00.000+0000","closedDate":null}`, Incident{}, outcomeOK},
		{"time layouts", `{"closedDate":"2024-05-20T10:00:00Z","completedDate":"2024-05-20T10:00:00+0200","creationDate":"2024-05-20"}`,
			Incident{ClosedDate: at("2024-05-20T10:00:00Z"), CompletedDate: at("2024-05-20T10:00:00+0200"), CreationDate: at("2024-05-20")}, outcomeOK},
		{"empty and null time strings", `{"closedDate":"","completedDate":"null"}`,
			Incident{ClosedDate: &Time{}, CompletedDate: &Time{}}, outcomeOK},
		{"escapes", `{"id":"\"\\\/\b\f\n\r\t\u00e9\u0000"}`, Incident{ID: "\"\\/\b\f\n\r\té\x00"}, outcomeOK},
		{"surrogate pair", `{"id":"\ud83d\ude00"}`, Incident{ID: "😀"}, outcomeOK},
		{"lone and reversed surrogates", `{"id":"\ud83d|\ude00\ud83d|\ud83d\u0041"}`, Incident{ID: "\uFFFD|\uFFFD\uFFFD|\uFFFDA"}, outcomeOK},
		{"invalid UTF-8", "{\"id\":\"a\xffb\xed\xa0\x80c\xe2\x82\"}", Incident{ID: "a\uFFFDb\uFFFD\uFFFD\uFFFDc\uFFFD\uFFFD"}, outcomeOK},
		{"valid UTF-8 kept", `{"briefDescription":"Schijf vol — €5 😀"}`, Incident{BriefDescription: "Schijf vol — €5 😀"}, outcomeOK},
		{"skipped values", `{"caller":{"a":[1,-2.5e+3,0.0E-0,{"b":null},true,false,"\u00e9"],"c":{}},"d":[],"id":"x"}`,
			Incident{ID: "x"}, outcomeOK},
		{"whitespace", " \t\r\n{ \"id\" : \"a\" ,\n\"closed\" :\ttrue } \n", Incident{ID: "a", Closed: true}, outcomeOK},
		{"garbage after the value", `{"id":"a"} trailing {garbage`, Incident{ID: "a"}, outcomeOK},
		{"null", `null`, Incident{}, outcomeOK},
		{"null and garbage", `null,x`, Incident{}, outcomeOK},
		{"deepest nesting", deep(maxDepth - 1), Incident{}, outcomeOK},
		{"deepest nesting in a ref", `{"priority":{"x":` + strings.Repeat("[", maxDepth-2) + strings.Repeat("]", maxDepth-2) + `}}`,
			Incident{Priority: &Ref{}}, outcomeOK},

		{"empty", ``, Incident{}, outcomeEOF},
		{"blank", " \r\n\t", Incident{}, outcomeEOF},
		{"cut after a member", `{"id":"a"`, Incident{}, outcomeCut},
		{"cut in a string", `{"id":"a`, Incident{}, outcomeCut},
		{"cut in an escape", `{"id":"\u00`, Incident{}, outcomeCut},
		{"cut in a literal", `{"closed":tr`, Incident{}, outcomeCut},
		{"cut top-level literal", `nul`, Incident{}, outcomeCut},
		{"cut in a skipped array", `{"x":[1,2`, Incident{}, outcomeCut},
		{"cut in a number", `{"x":1.`, Incident{}, outcomeCut},
		{"cut after a wrong value", `{"id":1,"x":"`, Incident{}, outcomeCut},

		{"leading zero in a skipped value", `{"caller":{"a":01}}`, Incident{}, outcomeSyntax},
		{"trailing comma in an array", `{"caller":[1,]}`, Incident{}, outcomeSyntax},
		{"trailing comma in an object", `{"id":"a",}`, Incident{}, outcomeSyntax},
		{"bad escape", `{"x":"\q"}`, Incident{}, outcomeSyntax},
		{"bad \\u escape", `{"x":"\u12G4"}`, Incident{}, outcomeSyntax},
		{"control character in a string", "{\"x\":\"a\tb\"}", Incident{}, outcomeSyntax},
		{"bare word", `{"x":nope}`, Incident{}, outcomeSyntax},
		{"number without digits", `{"x":-}`, Incident{}, outcomeSyntax},
		{"fraction without digits", `{"x":1.e3}`, Incident{}, outcomeSyntax},
		{"exponent without digits", `{"x":1e+}`, Incident{}, outcomeSyntax},
		{"missing colon", `{"id" "a"}`, Incident{}, outcomeSyntax},
		{"key not a string", `{id:"a"}`, Incident{}, outcomeSyntax},
		{"byte order mark", "\xef\xbb\xbf{}", Incident{}, outcomeSyntax},
		{"wrong value then invalid JSON", `{"id":1,"x":}`, Incident{}, outcomeSyntax},
		{"nested too deep", deep(maxDepth), Incident{}, outcomeSyntax},
		{"nested too deep in a ref", `{"priority":{"x":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}}`,
			Incident{}, outcomeSyntax},
		{"nested too deep in a time", `{"closedDate":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`,
			Incident{}, outcomeSyntax},

		{"number for a string", `{"id":1}`, Incident{}, outcomeValue},
		{"string for a bool", `{"closed":"true"}`, Incident{}, outcomeValue},
		{"string for a ref", `{"priority":"P1"}`, Incident{}, outcomeValue},
		{"array for a ref", `{"priority":[]}`, Incident{}, outcomeValue},
		{"object for a string", `{"status":{"id":"x"}}`, Incident{}, outcomeValue},
		{"bool for a ref name", `{"priority":{"name":true}}`, Incident{}, outcomeValue},
		{"unparsable time", `{"closedDate":"yesterday"}`, Incident{}, outcomeValue},
		{"escaped time", `{"closedDate":"2024\u002d05-20"}`, Incident{}, outcomeValue},
		{"number for a time", `{"closedDate":1716199200}`, Incident{}, outcomeValue},
		{"object for a time", `{"closedDate":{}}`, Incident{}, outcomeValue},
		{"array", `[]`, Incident{}, outcomeValue},
		{"string", `"x"`, Incident{}, outcomeValue},
		{"number", `12`, Incident{}, outcomeValue},
		{"boolean", `true`, Incident{}, outcomeValue},
	}
}

func TestDecodeIncident(t *testing.T) {
	for _, tc := range incidentCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			var got Incident
			err := decodeBody(strings.NewReader(tc.body), -1, &got)
			if o := outcome(err); o != tc.wantOutcome {
				t.Fatalf("decode = %s (%v), want %s", o, err, tc.wantOutcome)
			}
			if err == nil {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("decoded incident mismatch (-want +got):\n%s", diff)
				}
			} else if err != io.EOF && !strings.Contains(err.Error(), "at offset ") {
				t.Errorf("error %q does not say where", err)
			}
			checkAgainstStdlib(t, []byte(tc.body), allComparisons())
		})
	}
}

func TestDecodeIncidentList(t *testing.T) {
	inc := readModelIncident(t)
	tests := []struct {
		name        string
		body        string
		start       []Incident
		want        []Incident
		wantOutcome string
	}{
		{"search answer", listBody(2), nil, []Incident{inc, inc}, outcomeOK},
		{"empty array is not nil", `[]`, nil, []Incident{}, outcomeOK},
		{"null", `null`, []Incident{{ID: "a"}}, nil, outcomeOK},
		{"null element", `[null,{"id":"b"}]`, nil, []Incident{{}, {ID: "b"}}, outcomeOK},
		{"decodes into the old elements", `[{"id":"b"}]`, []Incident{{ID: "a", Status: "s"}, {ID: "c"}},
			[]Incident{{ID: "b", Status: "s"}}, outcomeOK},
		{"garbage after the array", `[{"id":"a"}]]`, nil, []Incident{{ID: "a"}}, outcomeOK},
		{"cut", `[{"id":"a"},`, nil, nil, outcomeCut},
		{"trailing comma", `[{"id":"a"},]`, nil, nil, outcomeSyntax},
		{"missing comma", `[{"id":"a"} {"id":"b"}]`, nil, nil, outcomeSyntax},
		{"number element", `[1]`, nil, nil, outcomeValue},
		{"deepest nesting in an element", `[{"x":` + strings.Repeat("[", maxDepth-2) + strings.Repeat("]", maxDepth-2) + `}]`,
			nil, []Incident{{}}, outcomeOK},
		{"nested too deep in an element", `[{"x":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}]`,
			nil, nil, outcomeSyntax},
		{"object", `{"id":"a"}`, nil, nil, outcomeValue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.start
			err := decodeBody(strings.NewReader(tc.body), -1, &got)
			if o := outcome(err); o != tc.wantOutcome {
				t.Fatalf("decode = %s (%v), want %s", o, err, tc.wantOutcome)
			}
			if err == nil {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("decoded list mismatch (-want +got):\n%s", diff)
				}
				if (got == nil) != (tc.want == nil) {
					t.Errorf("decoded list is %#v, want %#v", got, tc.want)
				}
			}
			checkAgainstStdlib(t, []byte(tc.body), allComparisons())
		})
	}
}

// TestDecodeLongListBounded checks that a list much longer than the buffer
// decodes like encoding/json does while the buffer stays small.
func TestDecodeLongListBounded(t *testing.T) {
	const n = 500
	body := listBody(n) // about 350 KB
	d := newDecoder(strings.NewReader(body), maxResponseBody, -1)
	var got []Incident
	if err := d.incidentListDoc(&got); err != nil {
		t.Fatal(err)
	}
	if len(got) != n || !reflect.DeepEqual(got[n-1], readModelIncident(t)) {
		t.Errorf("decoded %d incidents, last %+v", len(got), got[len(got)-1])
	}
	if c := cap(d.buf); c > 16<<10 {
		t.Errorf("buffer grew to %d bytes for a %d byte body, want at most 16 KiB", c, len(body))
	}
	checkAgainstStdlib(t, []byte(body), quickComparisons())

	// An error is reported at its offset in the body, not in the buffer.
	bad := body[:len(body)-1] + "}"
	err := decodeBody(strings.NewReader(bad), -1, new([]Incident))
	var se *syntaxError
	if !errors.As(err, &se) || se.Offset != int64(len(body)-1) {
		t.Errorf("err = %v, want a syntax error at offset %d", err, len(body)-1)
	}
}

// TestDecodeLimit checks that the decoder reads no more than its limit, and
// treats the limit like json.Decoder treats the end of an io.LimitReader.
func TestDecodeLimit(t *testing.T) {
	body := []byte(listBody(2) + "  ")
	for limit := range int64(len(body) + 1) {
		var want, got []Incident
		wantErr := json.NewDecoder(io.LimitReader(bytes.NewReader(body), limit)).Decode(&want)
		r := iotest.OneByteReader(bytes.NewReader(body))
		d := newDecoder(r, limit, -1)
		gotErr := d.incidentListDoc(&got)
		if outcome(gotErr) != outcome(wantErr) || !reflect.DeepEqual(got, want) {
			t.Errorf("limit %d: got %v, %v; encoding/json %v, %v", limit, len(got), gotErr, len(want), wantErr)
		}
		if read := d.base + int64(len(d.buf)); read > limit {
			t.Errorf("limit %d: read %d bytes", limit, read)
		}
	}
}

// bodyTransport answers every request with status and a body read from
// open().
type bodyTransport struct {
	status int
	open   func() io.Reader
}

func (b bodyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_ = req.Body.Close() // a bytes.Reader body cannot fail to close
	}
	return &http.Response{
		StatusCode:    b.status,
		Header:        http.Header{"Content-Type": []string{"application/json"}},
		Body:          io.NopCloser(b.open()),
		ContentLength: -1,
		Request:       req,
	}, nil
}

// TestDecodeErrorsThroughClient checks how the client reports answers that
// do not decode: cut or empty answers are retryable, invalid ones are not,
// and either way a create's outcome is unknown.
func TestDecodeErrorsThroughClient(t *testing.T) {
	text := func(s string) func() io.Reader { return func() io.Reader { return strings.NewReader(s) } }
	tests := []struct {
		name          string
		body          func() io.Reader
		wantErr       error // matched with errors.Is; nil for none
		wantRetryable bool
		wantOffset    int64  // of the *syntaxError or *valueError; -1 for none
		wantText      string // part of the error text
	}{
		{"read model", text(readModelBody), nil, false, -1, ""},
		{"garbage after the incident", text(readModelBody + "\n<html>"), nil, false, -1, ""},
		{"empty", text(""), io.ErrUnexpectedEOF, true, -1, "read 201 response: unexpected EOF"},
		{"cut", text(readModelBody[:1000]), io.ErrUnexpectedEOF, true, 1000,
			"decode 201 response: json: body ends inside the JSON value at offset 1000: unexpected EOF"},
		{"connection reset", func() io.Reader {
			return io.MultiReader(strings.NewReader(readModelBody[:1000]), iotest.ErrReader(syscall.ECONNRESET))
		}, syscall.ECONNRESET, true, -1, "decode 201 response: connection reset by peer"},
		{"invalid", text(`{"id":"a",}`), nil, false, 10,
			"decode 201 response: json: invalid character '}' looking for beginning of object key string at offset 10"},
		{"wrong type", text(`{"id":"a","closed":"yes"}`), nil, false, 19,
			"decode 201 response: json: cannot store a JSON string in closed (bool) at offset 19"},
	}
	req := &IncidentRequest{Caller: &Caller{DynamicName: "Monitoring"}, BriefDescription: "Disk full"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient("https://td.example.net", Options{Username: "u", Password: "p", Transport: bodyTransport{http.StatusCreated, tc.body}})
			if err != nil {
				t.Fatal(err)
			}
			inc, err := c.CreateIncident(t.Context(), req)
			if tc.wantText == "" {
				if err != nil {
					t.Fatalf("CreateIncident: %v", err)
				}
				if diff := cmp.Diff(readModelIncident(t), *inc); diff != "" {
					t.Errorf("incident mismatch (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("CreateIncident succeeded, want an error with %q", tc.wantText)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want one matching %v", err, tc.wantErr)
			}
			var se *syntaxError
			var ve *valueError
			offset := int64(-1)
			switch {
			case errors.As(err, &se):
				offset = se.Offset
			case errors.As(err, &ve):
				offset = ve.Offset
			}
			if offset != tc.wantOffset {
				t.Errorf("err = %v at offset %d, want offset %d", err, offset, tc.wantOffset)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("err = %q, want it to contain %q", err, tc.wantText)
			}
			if got := IsRetryable(err); got != tc.wantRetryable {
				t.Errorf("IsRetryable(%v) = %v, want %v", err, got, tc.wantRetryable)
			}
			if !IsOutcomeUnknown(err) {
				t.Errorf("IsOutcomeUnknown(%v) = false, want true: the create was answered", err)
			}
		})
	}
}

// recordingTransport keeps a copy of every response body. It is used from
// one goroutine at a time.
type recordingTransport struct {
	rt     http.RoundTripper
	bodies [][]byte
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	r.bodies = append(r.bodies, b)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// simulatorBodies returns the simulator's answers to a create, an update, a
// get, a search and a list.
func simulatorBodies(tb testing.TB) [][]byte {
	tb.Helper()
	sim := topdesktest.Start(tb, topdesktest.Options{})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	rec := &recordingTransport{rt: tr}
	c, err := NewClient(sim.URL(), Options{Username: topdesktest.DefaultUsername, Password: topdesktest.DefaultPassword, Transport: rec})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := tb.Context()
	inc, err := c.CreateIncident(ctx, &IncidentRequest{
		Caller:           &Caller{DynamicName: "Monitoring"},
		BriefDescription: "Disk / at 97% on db-7",
		Request:          "Free space below 3%.\nHost: db-7 — “prod”",
		ExternalNumber:   "alertdesk-5d41402abc4b2a76b9719d911017c592",
		Priority:         &Ref{Name: "P1"},
		Category:         &Ref{Name: "Databases"},
		Subcategory:      &Ref{Name: "PostgreSQL"},
	})
	if err != nil {
		tb.Fatalf("create: %v", err)
	}
	done := true
	if _, err := c.UpdateIncident(ctx, inc.ID, &IncidentRequest{Action: "Resolved by monitoring.", Completed: &done, Closed: &done}); err != nil {
		tb.Fatalf("update: %v", err)
	}
	if _, err := c.GetIncident(ctx, inc.ID); err != nil {
		tb.Fatalf("get: %v", err)
	}
	if _, err := c.FindIncidents(ctx, inc.ExternalNumber); err != nil {
		tb.Fatalf("find: %v", err)
	}
	if _, err := c.ListIncidentsByPrefix(ctx, "alertdesk-"); err != nil {
		tb.Fatalf("list: %v", err)
	}
	return rec.bodies
}

// TestDecodeSimulatorAnswers decodes the simulator's real answers like
// encoding/json does.
func TestDecodeSimulatorAnswers(t *testing.T) {
	bodies := simulatorBodies(t)
	if len(bodies) < 5 {
		t.Fatalf("recorded %d answers, want at least 5", len(bodies))
	}
	for _, b := range bodies {
		checkAgainstStdlib(t, b, allComparisons())
	}
}

// FuzzDecodeIncident checks decodeBody against encoding/json on arbitrary
// bodies (see quickComparisons). The seeds are the simulator's answers and
// the bodies of the table tests.
func FuzzDecodeIncident(f *testing.F) {
	for _, b := range simulatorBodies(f) {
		f.Add(b)
	}
	for _, tc := range incidentCases(f) {
		if len(tc.body) < 4<<10 { // not the deep nesting: big seeds slow the fuzzer down
			f.Add([]byte(tc.body))
		}
	}
	for _, s := range []string{`[]`, `null`, `[null,{"id":"b"}]`, `[{"id":"a"},]`, `[1]`, listBody(3)} {
		f.Add([]byte(s))
	}
	cmps := quickComparisons()
	f.Fuzz(func(t *testing.T, body []byte) {
		checkAgainstStdlib(t, body, cmps)
	})
}

// BenchmarkDecodeIncident compares encoding/json's Decoder, as the client
// used it before, with decodeBody on the simulator's create answer.
func BenchmarkDecodeIncident(b *testing.B) {
	benchmarkDecode(b, []byte(readModelBody), func() any { return new(Incident) })
}

// BenchmarkDecodeIncidentList does the same for a search answer with 100
// incidents.
func BenchmarkDecodeIncidentList(b *testing.B) {
	benchmarkDecode(b, []byte(listBody(100)), func() any { return new([]Incident) })
}

func benchmarkDecode(b *testing.B, body []byte, fresh func() any) {
	b.Run("decoder=encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if err := json.NewDecoder(io.LimitReader(bytes.NewReader(body), maxResponseBody)).Decode(fresh()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decoder=one-pass", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if err := decodeBody(bytes.NewReader(body), -1, fresh()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCreateIncidentReadModel is BenchmarkCreateIncident with the whole
// read model as the answer, as TOPdesk and the simulator send it.
func BenchmarkCreateIncidentReadModel(b *testing.B) {
	c := benchClient(b, http.StatusCreated, readModelBody)
	in := &IncidentRequest{
		Caller:           &Caller{DynamicName: "Monitoring"},
		BriefDescription: "Disk / at 97% on db-7",
		Request:          "Free space below 3%.",
		ExternalNumber:   "alertdesk-5d41402abc4b2a76b9719d911017c592",
		Priority:         &Ref{ID: "b87f82b5-31bb-569e-8386-86ab0fca4fdc"},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.CreateIncident(b.Context(), in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateIncidentSimulator creates incidents in the simulator over
// HTTP, so that the decode is measured as a part of the whole call.
func BenchmarkCreateIncidentSimulator(b *testing.B) {
	sim := topdesktest.Start(b, topdesktest.Options{})
	c, err := NewClient(sim.URL(), Options{Username: topdesktest.DefaultUsername, Password: topdesktest.DefaultPassword})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.CloseIdleConnections)
	in := &IncidentRequest{
		Caller:           &Caller{DynamicName: "Monitoring"},
		BriefDescription: "Disk / at 97% on db-7",
		Request:          "Free space below 3%.",
		ExternalNumber:   "alertdesk-5d41402abc4b2a76b9719d911017c592",
		Priority:         &Ref{Name: "P1"},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.CreateIncident(b.Context(), in); err != nil {
			b.Fatal(err)
		}
	}
}
