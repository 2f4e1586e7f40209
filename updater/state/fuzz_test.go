package state

import (
	"encoding/json"
	"testing"
)

// FuzzParse: any bytes on the data partition give a state or an error,
// never a panic; a state that parses survives a save and a read.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"format": 2, "serials": {"stable": 4}, "committed": "a", "slots": {"a": {"image": "demo", "version": "1"}}, "trial": {"slot": "b", "armed": true, "boots": 1}, "download": {"serial": 5, "slot": "b", "done": ["x"], "offset": 7}}`))
	f.Add([]byte(`{"format": 1, "last_serial": 12}`))
	f.Add([]byte(`{"format": 2, "trial": {"slot": "c"}}`))
	f.Add([]byte(""))
	f.Add([]byte("\x00\xff{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := Parse(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("a parsed state does not parse again: %v\n%s", err, out)
		}
	})
}
