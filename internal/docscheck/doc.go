// Package docscheck runs the commands the documentation shows (README.md
// and docs/*.md) with a pibake built from this tree, and fails when what
// they print or their exit status no longer matches what the page says.
//
// Only blocks fenced as "```sh docs-check" run: commands that need no
// hardware, root, network or image build. In such a block a line
// "$ COMMAND" is run by sh in a temporary folder (one per page, holding
// links to images/, overlays/, services/ and examples/, and pibake on
// PATH as pibake and bin/pibake); the lines up to the next "$ " are its
// output, stdout and stderr together. A line "..." stands for any number
// of lines; a last line "[exit N]" says the command fails with status N.
// A command may feed a here-document ("<<'EOF'" ... "EOF").
// docs/architecture.md#the-docs-check says it for contributors.
package docscheck
