package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcusign/mcusign/cmd/internal/daemon/audit"
	"github.com/mcusign/mcusign/plugin"
)

func newStatusCmd(e *env) *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "status [-k TOKEN-URI]",
		Short: "Show whether signing goes through a standing mcusignd or an on-demand one",
		Long: `Show how pkcs11: keys are used: through a standing mcusignd (found by its
descriptor in $MCUSIGN_SOCKET_DIR, else $XDG_RUNTIME_DIR/mcusign), or through
an mcusignd that mcusign starts for each command. Prints the daemon's
version, uptime, limits, audit log, counters and keys. With -k, also lists
every key on that token.`,
		Example: `  mcusign status
  MCUSIGN_SOCKET_DIR=/run/mcusign mcusign status -k 'pkcs11:token=release'`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if inProcess() {
				fmt.Fprintf(e.stdout, "mode:       in-process (%s=1): pkcs11: keys are opened inside mcusign, without mcusignd\n", EnvInProcess)
				return nil
			}
			if key != "" {
				if err := e.checkURI(key); err != nil {
					return err
				}
			}
			conn, err := e.connectDaemon(key)
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx := context.Background()
			st, err := conn.Status(ctx)
			if err != nil {
				return err
			}
			var listed []plugin.KeyInfo
			if key != "" {
				if listed, err = conn.ListKeys(ctx, key); err != nil {
					return err
				}
			}
			printStatus(e.stdout, conn, st, listed)
			return nil
		},
	}
	cmd.Flags().StringVarP(&key, "key", "k", "", "pkcs11: URI of a token whose keys to list")
	return cmd
}

func printStatus(w io.Writer, conn *plugin.Conn, st *plugin.Status, listed []plugin.KeyInfo) {
	dir, _ := socketDir()
	if conn.Standing {
		fmt.Fprintf(w, "mode:       standing mcusignd (pid %d, socket %s)\n", st.PID, conn.Where)
	} else {
		fmt.Fprintf(w, "mode:       on-demand: no mcusignd serves in %s, so mcusign starts %s for each command\n", dir, conn.Where)
	}
	fmt.Fprintf(w, "version:    %s\n", st.Version)
	fmt.Fprintf(w, "uptime:     %s\n", st.Uptime.Round(time.Second))
	if st.Module != "" {
		fmt.Fprintf(w, "module:     %s\n", st.Module)
	}
	if len(st.Tokens) > 0 {
		fmt.Fprintf(w, "tokens:     %s\n", strings.Join(st.Tokens, ", "))
	}
	head := st.AuditHead
	if head == "" {
		head = "none yet"
	}
	fmt.Fprintf(w, "audit log:  %s (%d records, head %s)\n", st.AuditLog, st.AuditRecords, head)
	fmt.Fprintf(w, "signatures: %d made, %d failed\n", st.SignaturesOK, st.SignaturesFailed)
	fmt.Fprintf(w, "refused:    %d connections, %d requests\n", st.ConnectionsRefused, st.RequestsRefused)
	fmt.Fprintf(w, "keys made:  %d (keygen %s)\n", st.KeysGenerated, map[bool]string{true: "allowed", false: "not allowed"}[st.KeygenAllowed])
	fmt.Fprintf(w, "limits:     %d concurrent (%d in flight), images up to %d bytes, %s per request\n", st.MaxConcurrent, st.InFlight, st.MaxImageSize, st.RequestTimeout)
	fmt.Fprintf(w, "keys:       %d\n", len(st.Keys))
	for _, k := range st.Keys {
		fmt.Fprintf(w, "  %-10s %s  %s  %d signatures\n", orDash(string(k.Key.Type)), k.Key.URI, orDash(k.Key.Fingerprint), k.Signatures)
	}
	if listed != nil {
		fmt.Fprintf(w, "token keys: %d\n", len(listed))
		for _, k := range listed {
			fmt.Fprintf(w, "  %-10s %s  %s\n", orDash(string(k.Type)), k.URI, orDash(k.Fingerprint))
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// newAuditCmd is one command taking the action as its first argument, so
// errors read "mcusign audit: ..." rather than the name of a subcommand.
func newAuditCmd(e *env) *cobra.Command {
	var continued bool
	cmd := &cobra.Command{
		Use:   "audit verify [--continued] FILE...",
		Short: "Check an mcusignd audit log's hash chain",
		Long: `'mcusign audit verify' checks that no line of an mcusignd audit log was
edited, removed, inserted or reordered: every record must match its own hash,
name the previous record's hash, and carry the next sequence number. Give
rotated files oldest first to check them as one chain; --continued accepts a
first record that continues a file not given. Lines cut from the end leave
no trace in the chain: compare the last seq and hash with 'mcusign status'
or a copy kept elsewhere.`,
		Example: `  mcusign audit verify /var/log/mcusign/audit.jsonl
  mcusign audit verify audit.jsonl.1 audit.jsonl`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 || args[0] != "verify" {
				return usagef("use: mcusign audit verify FILE...")
			}
			if len(args) < 2 {
				return usagef("audit verify needs the audit log file(s)")
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			v := &audit.Verifier{Continued: continued}
			for _, name := range args[1:] {
				f, err := os.Open(name)
				if err != nil {
					return usagef("cannot open the audit log: %v", err)
				}
				err = v.File(name, f)
				f.Close()
				if err != nil {
					var le *audit.LineError
					if errors.As(err, &le) {
						return fmt.Errorf("audit log FAILED: %v", err)
					}
					return err
				}
			}
			s := v.Summary()
			if s.Records == 0 {
				fmt.Fprintln(e.stdout, "audit log OK: 0 records")
				return nil
			}
			fmt.Fprintf(e.stdout, "audit log OK: %d records (last seq %d, head %s)\n", s.Records, s.LastSeq, s.LastHash)
			return nil
		},
	}
	cmd.Flags().BoolVar(&continued, "continued", false, "the first record may continue an earlier (rotated) file")
	return cmd
}
