// Package archtest holds no code: its test checks the shape of the whole
// module, the rules docs/architecture.md states. Contract packages import
// nothing heavy, host tools that only read a build's manifest do not link
// the builder, the boot code does not reach into the updater, the boot
// chain's kind and the update repository's paths are spelled in one place,
// and no non-test file, function or parameter list outgrows its limit.
package archtest
