// Package statetest holds an in-memory state store for tests, kept out
// of the agent's production packages.
package statetest

import "github.com/pibake/pibake/updater/state"

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
	return state.Clone(m.St), nil
}

// Save implements Store.
func (m *Memory) Save(st state.State) error {
	m.Saves++
	st.Format = state.Format
	m.St = state.Clone(st)
	return nil
}
