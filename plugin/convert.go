package plugin

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/mcusign/mcusign/plugin/pb"
	"github.com/mcusign/mcusign/signer"
)

func hashToPB(h crypto.Hash) (pb.HashAlgorithm, error) {
	switch h {
	case crypto.SHA256:
		return pb.HashAlgorithm_HASH_ALGORITHM_SHA256, nil
	case crypto.SHA384:
		return pb.HashAlgorithm_HASH_ALGORITHM_SHA384, nil
	case crypto.SHA512:
		return pb.HashAlgorithm_HASH_ALGORITHM_SHA512, nil
	}
	return 0, fmt.Errorf("hash %v cannot be sent to mcusignd; MCUboot images use SHA-256, SHA-384 or SHA-512", h)
}

func hashFromPB(h pb.HashAlgorithm) (crypto.Hash, error) {
	switch h {
	case pb.HashAlgorithm_HASH_ALGORITHM_SHA256:
		return crypto.SHA256, nil
	case pb.HashAlgorithm_HASH_ALGORITHM_SHA384:
		return crypto.SHA384, nil
	case pb.HashAlgorithm_HASH_ALGORITHM_SHA512:
		return crypto.SHA512, nil
	}
	return 0, Errorf(codes.InvalidArgument, "unknown hash algorithm %d in the sign request; use SHA-256, SHA-384 or SHA-512", h)
}

func purposeToPB(p KeyPurpose) pb.KeyPurpose {
	switch p {
	case PurposePublic:
		return pb.KeyPurpose_KEY_PURPOSE_PUBLIC
	case PurposeSign:
		return pb.KeyPurpose_KEY_PURPOSE_SIGN
	case PurposeDescribe:
		return pb.KeyPurpose_KEY_PURPOSE_DESCRIBE
	}
	return pb.KeyPurpose_KEY_PURPOSE_UNSPECIFIED
}

func purposeFromPB(p pb.KeyPurpose) (KeyPurpose, error) {
	switch p {
	case pb.KeyPurpose_KEY_PURPOSE_PUBLIC:
		return PurposePublic, nil
	case pb.KeyPurpose_KEY_PURPOSE_SIGN:
		return PurposeSign, nil
	case pb.KeyPurpose_KEY_PURPOSE_DESCRIBE:
		return PurposeDescribe, nil
	}
	return 0, Errorf(codes.InvalidArgument, "unknown key purpose %d in the request", p)
}

// keyToPB encodes a KeyInfo; public keys travel as PKIX DER.
func keyToPB(k *KeyInfo) (*pb.KeyInfo, error) {
	out := &pb.KeyInfo{
		Type: string(k.Type), Algorithm: k.Algorithm, Label: k.Label, Id: k.ID,
		Token: k.Token, Serial: k.Serial, Uri: k.URI, PublicKeyError: k.PublicErr,
		Fingerprint: k.Fingerprint, HasPrivate: k.HasPrivate, HasPublicObject: k.HasPublicObject,
		Sign: k.Sign, Sensitive: k.Sensitive, Extractable: k.Extractable,
		AlwaysSensitive: k.AlwaysSensitive, NeverExtractable: k.NeverExtractable,
		Local: k.Local, AlwaysAuthenticate: k.AlwaysAuthenticate,
	}
	if k.Public != nil {
		der, err := x509.MarshalPKIXPublicKey(k.Public)
		if err != nil {
			return nil, fmt.Errorf("encoding the public key of %s: %w", k.URI, err)
		}
		out.PublicKey = der
	}
	return out, nil
}

func keyFromPB(k *pb.KeyInfo) (*KeyInfo, error) {
	if k == nil {
		return nil, fmt.Errorf("mcusignd sent an empty key description")
	}
	out := &KeyInfo{
		Type: signer.KeyType(k.Type), Algorithm: k.Algorithm, Label: k.Label, ID: k.Id,
		Token: k.Token, Serial: k.Serial, URI: k.Uri, PublicErr: k.PublicKeyError,
		Fingerprint: k.Fingerprint, HasPrivate: k.HasPrivate, HasPublicObject: k.HasPublicObject,
		Sign: k.Sign, Sensitive: k.Sensitive, Extractable: k.Extractable,
		AlwaysSensitive: k.AlwaysSensitive, NeverExtractable: k.NeverExtractable,
		Local: k.Local, AlwaysAuthenticate: k.AlwaysAuthenticate,
	}
	if len(k.PublicKey) > 0 {
		pub, err := x509.ParsePKIXPublicKey(k.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("mcusignd sent an unreadable public key for %s: %v", k.Uri, err)
		}
		out.Public = pub
	}
	return out, nil
}

func statusToPB(s *Status) (*pb.StatusResponse, error) {
	out := &pb.StatusResponse{
		Version: s.Version, Mode: s.Mode, Pid: int64(s.PID),
		StartedUnixMs: s.Started.UnixMilli(), UptimeMs: s.Uptime.Milliseconds(),
		Module: s.Module, Tokens: s.Tokens, AuditLog: s.AuditLog,
		AuditRecords: s.AuditRecords, AuditHead: s.AuditHead,
		SignaturesOk: s.SignaturesOK, SignaturesFailed: s.SignaturesFailed,
		KeysGenerated: s.KeysGenerated, ConnectionsRefused: s.ConnectionsRefused,
		RequestsRefused: s.RequestsRefused, InFlight: int32(s.InFlight),
		MaxConcurrent: int32(s.MaxConcurrent), MaxImageSize: s.MaxImageSize,
		RequestTimeoutMs: s.RequestTimeout.Milliseconds(), KeygenAllowed: s.KeygenAllowed,
	}
	for i := range s.Keys {
		k, err := keyToPB(&s.Keys[i].Key)
		if err != nil {
			return nil, err
		}
		out.Keys = append(out.Keys, &pb.KeyStatus{Key: k, Signatures: s.Keys[i].Signatures})
	}
	return out, nil
}

func statusFromPB(s *pb.StatusResponse) (*Status, error) {
	out := &Status{
		Version: s.Version, Mode: s.Mode, PID: int(s.Pid),
		Started: time.UnixMilli(s.StartedUnixMs), Uptime: time.Duration(s.UptimeMs) * time.Millisecond,
		Module: s.Module, Tokens: s.Tokens, AuditLog: s.AuditLog,
		AuditRecords: s.AuditRecords, AuditHead: s.AuditHead,
		SignaturesOK: s.SignaturesOk, SignaturesFailed: s.SignaturesFailed,
		KeysGenerated: s.KeysGenerated, ConnectionsRefused: s.ConnectionsRefused,
		RequestsRefused: s.RequestsRefused, InFlight: int(s.InFlight),
		MaxConcurrent: int(s.MaxConcurrent), MaxImageSize: s.MaxImageSize,
		RequestTimeout: time.Duration(s.RequestTimeoutMs) * time.Millisecond, KeygenAllowed: s.KeygenAllowed,
	}
	for _, k := range s.Keys {
		ki, err := keyFromPB(k.Key)
		if err != nil {
			return nil, err
		}
		out.Keys = append(out.Keys, KeyStatus{Key: *ki, Signatures: k.Signatures})
	}
	return out, nil
}
