package main

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/mcusign/mcusign/cmd/internal/fileutil"
	"github.com/mcusign/mcusign/signer"
)

func newVerifyCmd(e *env) *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "verify [-k KEY] IMGFILE",
		Short: "Check that a signed image verifies with a key",
		Long: `Check an image's hash and, with -k, its signature. KEY may be a private or
public PEM file or a pkcs11: URI; without -k only the hash is checked.
IMGFILE is Intel HEX if its name ends in .hex.

Exit status: 0 when the image verifies, 1 when it does not, 2 on bad usage.`,
		Example: `  mcusign verify -k keys/fw-pub.pem build/zephyr/zephyr.signed.bin`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, _, err := readImage(args[0])
			if err != nil {
				return err
			}
			var pub crypto.PublicKey
			if key != "" {
				k, err := e.openKey(key, false)
				if err != nil {
					return err
				}
				defer k.Close()
				pub = k.pub
			}
			v, err := signer.Verify(data, pub)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "Image was correctly validated")
			fmt.Fprintf(e.stdout, "Image version: %s\n", v.Version)
			if v.Digest != nil {
				fmt.Fprintf(e.stdout, "Image digest: %s\n", hex.EncodeToString(v.Digest))
			} else {
				fmt.Fprintf(e.stdout, "Image signature over image: %s\n", hex.EncodeToString(v.PureSignature))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&key, "key", "k", "", "public or private key: PEM file or pkcs11: URI")
	return cmd
}

func newDumpinfoCmd(e *env) *cobra.Command {
	var outfile string
	var silent bool
	format := newChoice("", "human", "yaml", "json")
	cmd := &cobra.Command{
		Use:   "dumpinfo [-f human|yaml|json] [-o OUTFILE] IMGFILE",
		Short: "Print an image's header, TLV areas and trailer",
		Long: `Print the header, the protected and unprotected TLV areas and the trailer of
an MCUboot image, in imgtool's human, YAML or JSON format. The default is
human on stdout, and YAML when writing to -o.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, _, err := readImage(args[0])
			if err != nil {
				return err
			}
			info, err := signer.Inspect(data, filepath.Base(args[0]))
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if info.Warning != "" {
				fmt.Fprintln(e.stdout, info.Warning) // imgtool prints it even with -o
			}
			f := format.value
			if f == "" {
				f = "human"
				if outfile != "" {
					f = "yaml"
				}
			}
			if outfile == "" {
				return info.Write(e.stdout, f, true)
			}
			var buf bytes.Buffer
			if err := info.Write(&buf, f, false); err != nil {
				return err
			}
			return fileutil.WriteFile(outfile, buf.Bytes(), 0o644)
		},
	}
	cmd.Flags().VarP(format, "format", "f", "output format (default human on stdout, yaml with -o)")
	cmd.Flags().StringVarP(&outfile, "outfile", "o", "", "write to this file instead of stdout")
	cmd.Flags().BoolVarP(&silent, "silent", "s", false, "accepted for compatibility; has no effect")
	return cmd
}
