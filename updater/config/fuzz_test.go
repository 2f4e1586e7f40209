package config

import "testing"

// FuzzOverride: the data partition's override either parses into the
// three fields it may set, or is refused; image configurations parse or
// fail, never panic.
func FuzzOverride(f *testing.F) {
	f.Add([]byte("channel: beta\npoll: 2m\n"))
	f.Add([]byte("keys: [RWSx]\n"))
	f.Add([]byte("health:\n  commands: [[/bin/sh]]\n"))
	f.Add([]byte("server: http://x\nchannel: [\n"))
	f.Add([]byte("server: http://10.0.2.100:8080\nchannel: stable\nboard: qemu\nkeys: [RWSkey]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseOverride("override", data)
		if c, err := Parse("image", data); err == nil {
			_ = c.Validate()
		}
	})
}
