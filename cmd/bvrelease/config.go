package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/bitvault/bitvault/release/config"
)

func newConfigCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Validate bvrelease.yaml, show it with defaults applied, or print its JSON Schema",
		Long: `Work with the release configuration.

  bvrelease config validate   check it: the rules every command applies, and its JSON Schema
  bvrelease config show       print it with every default applied (-o yaml|json)
  bvrelease config schema     print the JSON Schema (draft 2020-12) of bvrelease.yaml

The reference of every field is docs/bvrelease-yaml.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("config: name a subcommand: validate, show or schema")}
		},
	}
	cmd.PersistentFlags().StringVarP(&path, "config", "c", config.FileName, "release configuration")
	cmd.AddCommand(
		&cobra.Command{
			Use:   "validate",
			Short: "Check bvrelease.yaml; errors name file:line:col and the field (exit 2)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return validateConfig(cmd.OutOrStdout(), path)
			},
		},
		newConfigShowCommand(&path),
		&cobra.Command{
			Use:   "schema",
			Short: "Print the JSON Schema of bvrelease.yaml",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				_, err := cmd.OutOrStdout().Write(config.Schema())
				return err
			},
		},
	)
	return cmd
}

// validateConfig loads the configuration as every command does and checks it
// against the schema too; every error found is reported, not only the first.
func validateConfig(out io.Writer, path string) error {
	_, lerr := config.Load(path)
	var ce *config.Error
	if lerr != nil && !errors.As(lerr, &ce) {
		return lerr // not a configuration error: unreadable
	}
	if lerr != nil && ce.Line == 0 && ce.Field == "" {
		return lerr // missing or empty file: nothing more to say
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read release configuration: %w", err)
	}
	serr := config.ValidateSchema(path, data)
	if lerr == nil && serr == nil {
		fmt.Fprintf(out, "%s: valid\n", path)
		return nil
	}
	return joinConfigErrors(lerr, serr)
}

// joinConfigErrors merges the errors of Load and of the schema, leaving out
// a schema error about a field or a line Load already reported.
func joinConfigErrors(lerr, serr error) error {
	split := func(err error) []error {
		if err == nil {
			return nil
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			return j.Unwrap()
		}
		return []error{err}
	}
	fields, lines := map[string]bool{}, map[int]bool{}
	all := split(lerr)
	for _, e := range all {
		if ce, ok := e.(*config.Error); ok {
			fields[ce.Field], lines[ce.Line] = ce.Field != "", ce.Line > 0
		}
	}
	for _, e := range split(serr) {
		if ce, ok := e.(*config.Error); ok && (fields[ce.Field] || lines[ce.Line]) {
			continue
		}
		all = append(all, e)
	}
	return errors.Join(all...)
}

func newConfigShowCommand(path *string) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print bvrelease.yaml with every default applied",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "yaml" && format != "json" {
				return usageError{fmt.Errorf("--output %q: use yaml or json", format)}
			}
			cfg, err := config.Load(*path)
			if err != nil {
				return err
			}
			out, err := showConfig(cfg, format)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "yaml", "format: yaml or json")
	return cmd
}

// showConfig renders the loaded configuration, fields in the order of
// bvrelease.yaml's reference.
func showConfig(cfg *config.Config, format string) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	if format == "yaml" {
		return buf.Bytes(), nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(buf.Bytes(), &doc); err != nil {
		return nil, err
	}
	v, err := nodeJSON(doc.Content[0])
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, v, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// nodeJSON writes a YAML node as JSON, keeping the order of mapping keys.
func nodeJSON(n *yaml.Node) (json.RawMessage, error) {
	var b bytes.Buffer
	switch n.Kind {
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(n.Content[i].Value)
			b.Write(k)
			b.WriteByte(':')
			v, err := nodeJSON(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			b.Write(v)
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			v, err := nodeJSON(c)
			if err != nil {
				return nil, err
			}
			b.Write(v)
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			b.WriteString("null")
		case "!!bool", "!!int", "!!float":
			var v any
			if err := n.Decode(&v); err != nil {
				return nil, err
			}
			out, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			b.Write(out)
		default:
			out, err := json.Marshal(n.Value)
			if err != nil {
				return nil, err
			}
			b.Write(out)
		}
	default:
		return nil, fmt.Errorf("config show: unexpected YAML node kind %d", n.Kind)
	}
	return b.Bytes(), nil
}
