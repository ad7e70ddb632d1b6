package main

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcusign/mcusign/cmd/internal/fileutil"
	"github.com/mcusign/mcusign/plugin"
	"github.com/mcusign/mcusign/plugin/fdpass"
	"github.com/mcusign/mcusign/signer"
	"github.com/mcusign/mcusign/signer/ihex"
	"github.com/mcusign/mcusign/signer/pkcs11key"
)

// signFlags mirrors imgtool sign's options.
type signFlags struct {
	key, version, secCnt, deps, bootRecord, vid, cid   string
	fixSig, fixSigPubkey, sigOut, encrypt              string
	headerSize, slotSize, maxSectors                   intFlag
	loadAddr, romFixed, hexAddr                        intFlag
	align, maxAlign, erased, endian, pubKeyFormat, sha *choice
	hmacSHA, vector, encKeylen, compression            *choice
	padHeader, pad, confirm, test, overwriteOnly       bool
	pure, nonBootable, clear, saveEnctlv, padSig       bool
	customTLV, customTLVFile                           []string
	buildDir                                           string
}

// signJob is one image to sign; a build directory may yield several
// (binary and HEX, confirmed variants).
type signJob struct {
	flags           *signFlags
	infile, outfile string
}

func newSignCmd(e *env, name string) *cobra.Command {
	f := &signFlags{
		align:        newChoice("1", "1", "2", "4", "8", "16", "32"),
		maxAlign:     newChoice("", "8", "16", "32"),
		erased:       newChoice("0xff", "0", "0xff"),
		endian:       newChoice("little", "little", "big"),
		pubKeyFormat: newChoice("hash", "hash", "full"),
		sha:          newChoice("auto", "auto", "256", "384", "512"),
		hmacSHA:      newChoice("auto", "auto", "256", "512"),
		vector:       newChoice("", "payload", "digest"),
		encKeylen:    newChoice("128", "128", "256"),
		compression:  newChoice("disabled", "disabled", "lzma2", "lzma2armthumb"),
	}
	cmd := &cobra.Command{
		Use:   name + " [flags] INFILE OUTFILE",
		Short: "Create a signed or unsigned MCUboot image",
		Long: `Create a signed or unsigned MCUboot image from an application binary.

INFILE and OUTFILE are Intel HEX when their name ends in .hex, raw binary
otherwise. The key (-k) is a PEM file or a PKCS#11 URI; without a key the
image is unsigned (hash only). Numbers may be decimal or 0x/0o/0b prefixed.

The output is byte-for-byte what imgtool 2.4.0 writes for the same
arguments. Unlike imgtool, a --fix-sig signature that does not verify is
refused, and no output file is left behind on any error.

MCUSIGN_TRACE=1 prints, as one line on stderr, where the command's time
went (reading, connecting, hashing, the daemon's and the token's share)
and how the image reached mcusignd; see docs/performance.md.`,
		Example: `  # Zephyr app built with MCUboot (header already reserved in zephyr.bin):
  mcusign sign -k key.pem --version 1.2.3+4 --header-size 0x200 --align 4 \
      --slot-size 0x32000 zephyr/zephyr.bin zephyr/zephyr.signed.bin

  # Key in an HSM; the PIN comes from a file, never from argv:
  MCUSIGN_PIN_FILE=~/.config/mcusign/pin mcusign sign \
      -k 'pkcs11:token=release;object=fw-signing' -v 1.0.0 -H 0x200 -S 0x32000 \
      --pad-header app.bin app.signed.bin

  # Encrypted for the device's X25519 key (the signing key stays in the HSM),
  # and compressed:
  mcusign sign -k 'pkcs11:token=release;object=fw-signing' -v 1.0.0 -H 0x200 -S 0x32000 \
      --pad-header -E enc-x25519.pub.pem --compression lzma2armthumb app.bin app.enc.bin

  # Zephyr / nRF Connect SDK build directory: everything inferred (see 'mcusign doctor'):
  mcusign sign --build-dir build -k 'pkcs11:token=release;object=fw-signing'

  # External signing: export the digest, sign it elsewhere, insert it:
  mcusign sign -v 1.0.0 -H 0x200 -S 0x32000 --pad-header --vector-to-sign digest app.bin digest.bin
  mcusign sign -v 1.0.0 -H 0x200 -S 0x32000 --pad-header --fix-sig sig.b64 --fix-sig-pubkey pub.pem app.bin app.signed.bin`,
		Args: func(cmd *cobra.Command, args []string) error {
			if f.buildDir != "" {
				return cobra.RangeArgs(0, 2)(cmd, args)
			}
			return cobra.ExactArgs(2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.buildDir == "" {
				return e.sign(cmd, f, args[0], args[1])
			}
			jobs, err := e.buildDirJobs(cmd, f, args)
			if err != nil {
				return err
			}
			for _, j := range jobs {
				if err := e.sign(cmd, j.flags, j.infile, j.outfile); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&f.buildDir, "build-dir", "", "Zephyr/NCS build directory: infer version, header and slot size, alignment, key, inputs and outputs from it (explicit flags win)")
	fl := cmd.Flags()
	fl.StringVarP(&f.key, "key", "k", "", "signing key: PEM file or pkcs11: URI (omit for an unsigned image)")
	fl.StringVarP(&f.version, "version", "v", "", "image version maj.min.rev+build, e.g. 1.2.3+4 (required)")
	fl.VarP(&f.headerSize, "header-size", "H", "size of the header slot in front of the image, at least 32 (required)")
	fl.BoolVar(&f.padHeader, "pad-header", false, "prepend --header-size erased bytes for the header (else INFILE must start with that many zeros)")
	fl.VarP(&f.slotSize, "slot-size", "S", "size of the slot (the secondary slot if they differ); 0 disables the size check (required)")
	fl.Var(f.align, "align", "flash write alignment used by swap update modes")
	fl.Var(f.maxAlign, "max-align", "maximum flash alignment, if the slots' alignments differ and one exceeds 8")
	fl.BoolVar(&f.pad, "pad", false, "pad the image to --slot-size and add the trailer magic")
	fl.BoolVar(&f.confirm, "confirm", false, "mark the padded image as confirmed (implies --pad)")
	fl.BoolVar(&f.test, "test", false, "mark the padded image for a test swap (implies --pad)")
	fl.VarP(&f.maxSectors, "max-sectors", "M", "sectors the swap status area must cover when padding (default 128)")
	fl.BoolVar(&f.overwriteOnly, "overwrite-only", false, "use overwrite-only instead of swap upgrades (smaller trailer)")
	fl.VarP(f.erased, "erased-val", "R", "value erased flash reads back as")
	fl.VarP(&f.loadAddr, "load-addr", "L", "RAM load address, for images that run from RAM")
	fl.VarP(&f.romFixed, "rom-fixed", "F", "flash address the image is built for")
	fl.VarP(&f.hexAddr, "hex-addr", "x", "address of the image in a .hex OUTFILE")
	fl.StringVarP(&f.secCnt, "security-counter", "s", "", "security counter value, or 'auto' to derive it from the version")
	fl.StringVarP(&f.deps, "dependencies", "d", "", `dependencies on other images: "(<image id>,<version>), ..."`)
	fl.StringVar(&f.bootRecord, "boot-record", "", "add a CBOR boot record with this sw_type (at most 12 characters)")
	fl.StringArrayVar(&f.customTLV, "custom-tlv", nil, "`TAG VALUE`: add a protected TLV; 0x-prefixed VALUE is hex bytes, else a string (repeatable)")
	fl.StringArrayVar(&f.customTLVFile, "custom-tlv-file", nil, "`TAG FILE`: add a protected TLV with FILE's bytes (repeatable)")
	fl.Var(f.pubKeyFormat, "public-key-format", "put the key's hash (KEYHASH) or the full key (PUBKEY) in the image")
	fl.Var(f.sha, "sha", "image hash; auto picks the key type's default")
	fl.BoolVar(&f.pure, "pure", false, "Ed25519 signature over the image itself instead of its digest")
	fl.StringVar(&f.vid, "vid", "", "vendor UUID, or a domain name hashed into one")
	fl.StringVar(&f.cid, "cid", "", "image class UUID, or a name hashed into one (needs --vid)")
	fl.BoolVar(&f.nonBootable, "non-bootable", false, "mark the image as non-bootable")
	fl.VarP(f.endian, "endian", "e", "byte order (big reproduces imgtool's inconsistent big-endian output)")
	fl.Var(f.vector, "vector-to-sign", "write the payload or its digest to OUTFILE for external signing, instead of the image")
	fl.StringVar(&f.fixSig, "fix-sig", "", "insert this base64 signature made elsewhere (verified before use)")
	fl.StringVar(&f.fixSigPubkey, "fix-sig-pubkey", "", "public key (PEM) that verifies --fix-sig")
	fl.StringVar(&f.sigOut, "sig-out", "", "also write the signature, base64-encoded, to this file")
	fl.StringVarP(&f.encrypt, "encrypt", "E", "", "encrypt the image for the device's public key: X25519, P-256 or RSA-2048 PEM (or pkcs11: URI)")
	fl.Var(f.encKeylen, "encrypt-keylen", "AES key length for -E")
	fl.Var(f.hmacSHA, "hmac-sha", "hash for the ECIES HKDF/HMAC with -E (512 only for X25519)")
	fl.BoolVarP(&f.clear, "clear", "c", false, "with -E: keep the image in clear, with encryption capabilities")
	fl.BoolVar(&f.saveEnctlv, "save-enctlv", false, "with -E: size the trailer for saved encrypted key TLVs (BOOT_SWAP_SAVE_ENCTLV)")
	fl.Var(f.compression, "compression", "compress the image with LZMA2 (falls back to no compression if it does not shrink)")
	fl.BoolVar(&f.padSig, "pad-sig", false, "pad ECDSA signatures for MCUboot < 1.5 (refused: Mbed TLS rejects them)")
	cmd.Flags().MarkHidden("pad-sig")
	return cmd
}

// options turns the flags into engine options, checking each the way a user
// would want to be told.
func (f *signFlags) options() (signer.Options, error) {
	var o signer.Options
	if !f.headerSize.set {
		return o, usagef("missing -H/--header-size: use the space reserved for the MCUboot header (CONFIG_ROM_START_OFFSET, usually 0x200)")
	}
	if f.headerSize.value < signer.ImageHeaderSize {
		return o, usagef("-H/--header-size %d is below the minimum of 32: the app was built without room for the MCUboot header; rebuild it with CONFIG_BOOTLOADER_MCUBOOT=y (sysbuild: SB_CONFIG_BOOTLOADER_MCUBOOT=y), or pass --pad-header --header-size 0x200", f.headerSize.value)
	}
	if f.headerSize.value > 0xffff {
		return o, usagef("-H/--header-size %#x is too large: the header stores it in 16 bits", f.headerSize.value)
	}
	o.HeaderSize = int(f.headerSize.value)
	// The version is checked after the header size: `west sign --force` on an
	// app without MCUboot passes "--version None --header-size 0", and the
	// missing header is the problem to report.
	if f.version == "" {
		return o, usagef("missing -v/--version: give the image version, e.g. --version 1.2.3+4")
	}
	v, err := signer.ParseVersion(f.version)
	if err != nil {
		return o, usageError{err}
	}
	o.Version = v
	if !f.slotSize.set {
		return o, usagef("missing -S/--slot-size: give the size of the image slot (the secondary slot if they differ), or 0 to skip the size check")
	}
	if f.slotSize.value < 0 || f.slotSize.value > 1<<32 {
		return o, usagef("-S/--slot-size %d is out of range", f.slotSize.value)
	}
	o.SlotSize = int(f.slotSize.value)
	o.PadHeader = f.padHeader
	o.Align = atoi(f.align.value)
	o.MaxAlign = atoi(f.maxAlign.value)
	if f.maxSectors.set {
		if f.maxSectors.value <= 0 || f.maxSectors.value > 1<<20 {
			return o, usagef("-M/--max-sectors %d is out of range: use a positive sector count", f.maxSectors.value)
		}
		o.MaxSectors = int(f.maxSectors.value)
	}
	o.Pad, o.Confirm, o.Test = f.pad, f.confirm, f.test
	o.OverwriteOnly = f.overwriteOnly
	o.ErasedZero = f.erased.value == "0"
	o.BigEndian = f.endian.value == "big"
	for _, a := range []struct {
		flag string
		v    intFlag
		dst  *uint32
	}{{"-L/--load-addr", f.loadAddr, &o.LoadAddr}, {"-F/--rom-fixed", f.romFixed, &o.ROMFixed}} {
		if a.v.set {
			if a.v.value < 0 || a.v.value > 0xffffffff {
				return o, usagef("%s %#x does not fit in 32 bits", a.flag, a.v.value)
			}
			*a.dst = uint32(a.v.value)
		}
	}
	o.NonBootable = f.nonBootable
	if f.secCnt != "" {
		var c uint32
		if strings.EqualFold(f.secCnt, "auto") {
			c = signer.AutoSecurityCounter(v)
		} else {
			n, err := signer.ParseInt(f.secCnt)
			if err != nil || n < 0 || n > 0xffffffff {
				return o, usagef("invalid -s/--security-counter %q: use a number up to 0xffffffff, or auto", f.secCnt)
			}
			c = uint32(n)
		}
		o.SecurityCounter = &c
	}
	if f.deps != "" {
		if o.Dependencies, err = signer.ParseDependencies(f.deps); err != nil {
			return o, usageError{err}
		}
	}
	o.BootRecord = f.bootRecord
	if f.vid != "" {
		if o.VID, err = signer.ParseVID(f.vid); err != nil {
			return o, usageError{err}
		}
	}
	if f.cid != "" {
		if o.CID, err = signer.ParseCID(f.cid, o.VID); err != nil {
			return o, usageError{err}
		}
	}
	for _, pair := range f.customTLV {
		tag, val, err := splitPair(pair)
		if err != nil {
			return o, usagef("--custom-tlv needs TAG VALUE")
		}
		t, err := signer.ParseCustomTLV(tag, val)
		if err != nil {
			return o, usageError{err}
		}
		o.CustomTLVs = append(o.CustomTLVs, t)
	}
	for _, pair := range f.customTLVFile {
		tag, path, err := splitPair(pair)
		if err != nil {
			return o, usagef("--custom-tlv-file needs TAG FILE")
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return o, usagef("--custom-tlv-file %s: cannot read %s: %v", tag, path, err)
		}
		t, err := signer.ParseCustomTLVFile(tag, data)
		if err != nil {
			return o, usageError{err}
		}
		o.CustomTLVs = append(o.CustomTLVs, t)
	}
	o.FullPublicKey = f.pubKeyFormat.value == "full"
	o.Hash = map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}[f.sha.value]
	o.Pure = f.pure
	o.Vector = f.vector.value
	if f.compression.value != "disabled" {
		o.Compression = signer.Compression(f.compression.value)
	}
	return o, nil
}

func atoi(s string) int {
	n, _ := signer.ParseInt(s)
	return int(n)
}

func (e *env) sign(cmd *cobra.Command, f *signFlags, infile, outfile string) error {
	opts, err := f.options()
	if err != nil {
		return err
	}
	switch {
	case f.padSig:
		return usagef("--pad-sig is refused: padded ECDSA signatures are rejected by MCUboot's Mbed TLS backend, and MCUboot >= 1.5 does not need them")
	case f.key != "" && f.fixSig != "":
		return usagef("-k/--key and --fix-sig exclude each other: sign with a key, or insert a signature made elsewhere")
	case f.fixSig != "" && f.fixSigPubkey == "":
		return usagef("--fix-sig needs --fix-sig-pubkey, the public key that verifies the signature")
	case f.pure && f.sha.value != "auto":
		return usagef("--pure always uses SHA-512; drop --sha")
	case f.sigOut != "" && f.key == "" && f.fixSig == "":
		return usagef("--sig-out needs a signature: pass -k/--key or --fix-sig")
	case f.compression.value != "disabled" && (f.fixSig != "" || f.vector.value != ""):
		return usageError{signer.ErrCompressNeedsKey}
	}

	// A token key is opened (connecting to the daemon, looking the key up)
	// while the input is read, so neither waits for the other. A key file
	// is opened after the read, as before: it may ask for its passphrase,
	// which must not come before an error about the input.
	var kr *keyRef
	var kerr error
	keyOpened := make(chan struct{})
	openKey := func() {
		defer close(keyOpened)
		t, connected := time.Now(), trace.get("connect")
		kr, kerr = e.openKey(f.key, true)
		trace.add("lookup", time.Since(t)-(trace.get("connect")-connected))
	}
	overlap := pkcs11key.IsURI(f.key)
	if overlap {
		go openKey()
		defer func() {
			<-keyOpened
			kr.Close()
		}()
	}

	// A binary input is read straight into the buffer its image is built
	// in; for a daemon's key, a memory file that is then passed to the
	// daemon as it is, sealed, instead of as a copy.
	t := time.Now()
	var app *signer.App
	var data []byte
	var base *uint32
	var region *fdpass.Buffer
	if isHex(infile) {
		data, base, err = readImage(infile)
	} else {
		app, region, err = readApp(infile, opts, overlap && !inProcess())
	}
	if err != nil {
		return err
	}
	defer region.Close()
	trace.since("read", t)
	if overlap {
		t = time.Now()
		<-keyOpened
		trace.since("key-wait", t) // what opening the key added to the read
	}
	// imgtool moves a HEX base down by the prepended header (but not from 0).
	if base != nil && opts.PadHeader && *base != 0 {
		if *base < uint32(opts.HeaderSize) {
			return usagef("%s starts at %#x, below the %#x-byte header that --pad-header prepends; drop --pad-header or pass -x/--hex-addr", infile, *base, opts.HeaderSize)
		}
		b := *base - uint32(opts.HeaderSize)
		base = &b
	}
	if f.hexAddr.set {
		if f.hexAddr.value < 0 || f.hexAddr.value > 0xffffffff {
			return usagef("-x/--hex-addr %#x does not fit in 32 bits", f.hexAddr.value)
		}
		b := uint32(f.hexAddr.value)
		base = &b
	}
	if isHex(outfile) && base == nil {
		return usagef("%s is Intel HEX but no address is known: the input is binary; pass -x/--hex-addr with the slot's flash address", outfile)
	}

	var key signer.Key
	var fixed *signer.FixedSignature
	if f.key != "" {
		if !overlap {
			openKey()
			defer kr.Close()
		}
		if kerr != nil {
			return kerr
		}
		key = kr.signer
	}
	if f.fixSig != "" {
		if fixed, err = e.loadFixedSig(f.fixSig, f.fixSigPubkey); err != nil {
			return err
		}
	}

	// Like imgtool, the other encryption options mean nothing without -E;
	// Zephyr passes --encrypt-keylen for the plain image too.
	if f.encrypt != "" {
		if opts.Encrypt, err = e.encryption(f); err != nil {
			return err
		}
	}

	img, err := tracedBuild(key, func(ctx context.Context, key signer.Key) (*signer.Image, error) {
		if region != nil {
			ctx = plugin.WithRegionBuffer(ctx, region)
		}
		if app != nil {
			return signer.BuildApp(ctx, app, opts, key, fixed)
		}
		return signer.Build(ctx, data, opts, key, fixed)
	})
	if err != nil {
		return err
	}
	if c := img.Compression; c != nil {
		fmt.Fprintf(e.stdout, "compressed image size: %d bytes\noriginal image size: %d bytes\n", c.CompressedSize, c.OriginalSize)
	}

	// A binary image is written from the buffer it was built in, its
	// erased fill streamed (Image.WriteTo).
	var out io.WriterTo = img
	if isHex(outfile) {
		segs := []ihex.Segment{{Addr: *base, Data: img.Bytes}}
		if opts.Pad || opts.Confirm || opts.Test {
			for _, p := range img.TrailerPatches() {
				segs = append(segs, ihex.Segment{Addr: *base + uint32(p.Offset), Data: p.Data})
			}
		}
		var buf bytes.Buffer
		if err := ihex.Write(&buf, segs...); err != nil {
			return err
		}
		out = &buf
	}
	files := map[string]io.WriterTo{outfile: out}
	if f.sigOut != "" {
		files[f.sigOut] = strings.NewReader(base64.StdEncoding.EncodeToString(img.Signature))
	}
	t = time.Now()
	defer trace.since("write", t)
	return fileutil.WriteAllFrom(files, 0o644)
}

// encryption loads the device's public key for -E (a PEM file, private or
// public, or a pkcs11: URI) and collects the options that go with it.
func (e *env) encryption(f *signFlags) (*signer.Encryption, error) {
	k, err := e.openKey(f.encrypt, false)
	if err != nil {
		return nil, err
	}
	defer k.Close()
	return &signer.Encryption{
		PublicKey:  k.pub,
		KeyBits:    atoi(f.encKeylen.value),
		HMAC:       map[string]crypto.Hash{"512": crypto.SHA512}[f.hmacSHA.value],
		Clear:      f.clear,
		SaveEncTLV: f.saveEnctlv,
	}, nil
}

func (e *env) loadFixedSig(sigPath, pubPath string) (*signer.FixedSignature, error) {
	raw, err := os.ReadFile(sigPath)
	if err != nil {
		return nil, usagef("cannot read --fix-sig %s: %v", sigPath, err)
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, usagef("--fix-sig %s is not base64: encode the raw signature with `base64 -w0 sig.bin > sig.b64`", sigPath)
	}
	k, err := e.openKey(pubPath, false)
	if err != nil {
		return nil, err
	}
	defer k.Close()
	return &signer.FixedSignature{PublicKey: k.pub, Signature: sig}, nil
}
