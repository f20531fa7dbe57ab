package maintenance_test

import (
	"fmt"
	"time"

	"github.com/alertdesk/alertdesk/maintenance"
)

func ExampleWindows_Cover() {
	ws, err := maintenance.Compile([]maintenance.Spec{{
		Match:    map[string]string{"env": "staging"},
		Schedule: "0 22 * * 6", // Saturdays at 22:00
		Duration: 6 * time.Hour,
		Timezone: "Europe/Amsterdam",
		Reason:   "weekly patching",
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	sunday1am := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC) // 01:00 in Amsterdam
	cov, ok := ws.Cover(map[string]string{"env": "staging", "host": "web-3"}, sunday1am)
	fmt.Println(ok, cov.Window.ID, cov.Window.Reason, cov.End.UTC())

	_, ok = ws.Cover(map[string]string{"env": "prod"}, sunday1am)
	fmt.Println(ok)
	// Output:
	// true maintenance[0] weekly patching 2026-12-06 03:00:00 +0000 UTC
	// false
}
