package worker

import (
	"bytes"
	"fmt"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// alertAlone returns the payload of a multi-alert message with only its
// alert i, in the same shape: a webhook keeps its other fields and gets an
// "alerts" array of that alert; an array of native events becomes an
// array of that event. The payload must have decoded.
func alertAlone(data []byte, i int) ([]byte, error) {
	v := jsontext.Value(bytes.TrimSpace(data))
	switch v.Kind() {
	case '[':
		var events []jsontext.Value
		if err := json.Unmarshal(v, &events); err != nil {
			return nil, err
		}
		if i >= len(events) {
			return nil, fmt.Errorf("no event %d in a message of %d", i, len(events))
		}
		return json.Marshal([]jsontext.Value{events[i]})
	case '{':
		var hook map[string]jsontext.Value
		if err := json.Unmarshal(v, &hook); err != nil {
			return nil, err
		}
		var alerts []jsontext.Value
		if err := json.Unmarshal(hook["alerts"], &alerts); err != nil {
			return nil, err
		}
		if i >= len(alerts) {
			return nil, fmt.Errorf("no alert %d in a webhook of %d", i, len(alerts))
		}
		one, err := json.Marshal([]jsontext.Value{alerts[i]})
		if err != nil {
			return nil, err
		}
		hook["alerts"] = one
		return json.Marshal(hook, json.Deterministic(true))
	}
	return nil, fmt.Errorf("a message of kind %v has no alerts to take apart", v.Kind())
}
