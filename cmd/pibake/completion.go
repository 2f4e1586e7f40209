package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
)

// verbFlags is every verb with its flags, read from what each verb's
// --help prints, so a completion script never lists a flag a verb does
// not have.
func verbFlags(ctx context.Context) map[string][]string {
	out := map[string][]string{}
	for _, c := range commands {
		if c.name == "help" || c.name == "completion" {
			out[c.name] = nil
			continue
		}
		args := []string{"--help"}
		switch c.name {
		case "provision":
			args = []string{"check", "--help"}
		case "fleet":
			args = []string{"status", "--help"}
		}
		var b bytes.Buffer
		_ = c.run(ctx, args, &b, io.Discard)
		var flags []string
		for _, line := range strings.Split(b.String(), "\n") {
			if f, ok := strings.CutPrefix(line, "  -"); ok {
				flags = append(flags, "--"+strings.Fields(f)[0])
			}
		}
		sort.Strings(flags)
		out[c.name] = flags
	}
	return out
}

func cmdCompletion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("completion", "completion bash|zsh", stdout, stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	shell, err := oneArg(fs, pos, "shell (bash or zsh)")
	if err != nil {
		return err
	}
	if shell != "bash" && shell != "zsh" {
		fs.Usage()
		return fmt.Errorf("completion: no script for shell %q (want bash or zsh): %w", shell, errUsage)
	}
	vf := verbFlags(ctx)
	var verbs []string
	for _, c := range commands {
		verbs = append(verbs, c.name)
	}
	var cases strings.Builder
	for _, v := range verbs {
		words := vf[v]
		switch v {
		case "provision":
			words = append([]string{"check"}, words...)
		case "fleet":
			words = append([]string{"status"}, words...)
		case "help":
			words = verbs
		case "completion":
			words = []string{"bash", "zsh"}
		}
		fmt.Fprintf(&cases, "    %s) words=%q ;;\n", v, strings.Join(words, " "))
	}
	if shell == "zsh" {
		fmt.Fprint(stdout, "#compdef pibake\n# zsh completion for pibake: source <(pibake completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n")
	} else {
		fmt.Fprint(stdout, "# bash completion for pibake: source <(pibake completion bash)\n")
	}
	fmt.Fprintf(stdout, `_pibake() {
  local cur=${COMP_WORDS[COMP_CWORD]} words
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W %q -- "$cur"))
    return
  fi
  case ${COMP_WORDS[1]} in
%s    *) words="" ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
  if [ ${#COMPREPLY[@]} -eq 0 ]; then
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -o filenames -F _pibake pibake
`, strings.Join(verbs, " "), cases.String())
	return nil
}
