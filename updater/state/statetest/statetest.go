// Package statetest holds an in-memory state store for tests, kept out
// of the agent's production packages.
package statetest

import (
	"encoding/json"

	"github.com/pibake/pibake/updater/state"
)

// Memory is a Store in memory for tests: Save is atomic, like File's.
type Memory struct {
	St    state.State
	Saves int
}

// Load implements Store.
func (m *Memory) Load() (state.State, error) {
	if m.St.Format == 0 {
		m.St.Format = state.Format
	}
	return Clone(m.St), nil
}

// Save implements Store.
func (m *Memory) Save(st state.State) error {
	m.Saves++
	st.Format = state.Format
	m.St = Clone(st)
	return nil
}

// Clone deep-copies a state through its JSON form, as a round trip
// through File would.
func Clone(st state.State) state.State {
	data, _ := json.Marshal(st)
	var c state.State
	_ = json.Unmarshal(data, &c)
	return c
}

// Keep is a Keep in memory for tests: the signed documents by channel.
type Keep struct {
	Docs  map[string]state.Signed
	Saves int
}

// SaveCommitted implements the agent's Keep.
func (k *Keep) SaveCommitted(channel string, s state.Signed) error {
	if k.Docs == nil {
		k.Docs = map[string]state.Signed{}
	}
	k.Saves++
	k.Docs[channel] = s
	return nil
}

// Committed implements the agent's Keep.
func (k *Keep) Committed() (map[string]state.Signed, error) {
	out := map[string]state.Signed{}
	for c, s := range k.Docs {
		out[c] = s
	}
	return out, nil
}
