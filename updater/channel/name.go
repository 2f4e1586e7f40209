package channel

import "fmt"

// CheckName is the rule for a channel's name, the one the device applies
// to every document it reads (Document.Validate), so the one publish
// signs by and the one an image definition's updater section is checked
// against: lower-case letters, digits, '.', '_' and '-', starting with a
// letter or digit, at most 63.
func CheckName(name string) error {
	if !reName.MatchString(name) {
		return fmt.Errorf("channel name %q: use 1 to 63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. stable, beta, prod-eu): devices refuse any other", name)
	}
	return nil
}
