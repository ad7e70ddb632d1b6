package filekey

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
)

// Encrypted PKCS#8 (RFC 5958 EncryptedPrivateKeyInfo) with PBES2/PBKDF2
// (RFC 8018): what OpenSSL 1.1+/3.x and python-cryptography write.

var (
	oidPBES2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}

	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}

	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
)

// writeIterations is the PBKDF2-HMAC-SHA256 cost for keys we encrypt. imgtool
// (via OpenSSL) uses 2048; we follow current OWASP guidance instead, which
// every reader still accepts and costs well under a second per load. A
// variable only so tests can run faster.
var writeIterations = 600_000

// maxIterations bounds the work a (possibly hostile) key file can demand.
const maxIterations = 10_000_000

const reencryptHint = "re-encrypt it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -in KEY.pem -out NEW.pem`"

type encryptedPrivateKeyInfo struct {
	Algo          pkix.AlgorithmIdentifier
	EncryptedData []byte
}

type pbes2Params struct {
	KDF    pkix.AlgorithmIdentifier
	Cipher pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt       []byte
	Iterations int
	KeyLength  int                      `asn1:"optional"`
	PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
}

type cbcCipher struct {
	keyLen int
	block  func(key []byte) (cipher.Block, error)
}

var pbes2Ciphers = map[string]cbcCipher{
	oidAES128CBC.String():  {16, aes.NewCipher},
	oidAES192CBC.String():  {24, aes.NewCipher},
	oidAES256CBC.String():  {32, aes.NewCipher},
	oidDESEDE3CBC.String(): {24, des.NewTripleDESCipher},
}

var pbkdf2PRFs = map[string]func() hash.Hash{
	oidHMACSHA1.String():   sha1.New,
	oidHMACSHA224.String(): sha256.New224,
	oidHMACSHA256.String(): sha256.New,
	oidHMACSHA384.String(): sha512.New384,
	oidHMACSHA512.String(): sha512.New,
}

// pbes2Decrypter checks an EncryptedPrivateKeyInfo and returns the function
// that decrypts it, so unsupported schemes are reported before anyone is
// asked for a passphrase.
func pbes2Decrypter(der []byte) (func(password []byte) ([]byte, error), error) {
	var epki encryptedPrivateKeyInfo
	if rest, err := asn1.Unmarshal(der, &epki); err != nil || len(rest) != 0 {
		return nil, malformed("encrypted private key", errOr(err, "trailing data"))
	}
	if !epki.Algo.Algorithm.Equal(oidPBES2) {
		// PBES1 and PKCS#12 PBE schemes (MD5/SHA-1 with DES/RC2/RC4) are obsolete.
		return nil, fmt.Errorf("private key uses the obsolete encryption scheme %s, not PBES2; %s", epki.Algo.Algorithm, reencryptHint)
	}
	var params pbes2Params
	if _, err := asn1.Unmarshal(epki.Algo.Parameters.FullBytes, &params); err != nil {
		return nil, malformed("PBES2 parameters", err)
	}

	if params.KDF.Algorithm.Equal(oidScrypt) {
		return nil, fmt.Errorf("private key is encrypted with scrypt, which is not supported; %s", reencryptHint)
	}
	if !params.KDF.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("private key uses the unsupported key derivation %s; %s", params.KDF.Algorithm, reencryptHint)
	}
	var kdf pbkdf2Params
	if _, err := asn1.Unmarshal(params.KDF.Parameters.FullBytes, &kdf); err != nil {
		return nil, malformed("PBKDF2 parameters", err)
	}
	prf := sha1.New // RFC 8018 default
	if len(kdf.PRF.Algorithm) > 0 {
		var ok bool
		if prf, ok = pbkdf2PRFs[kdf.PRF.Algorithm.String()]; !ok {
			return nil, fmt.Errorf("private key uses the unsupported PBKDF2 PRF %s; %s", kdf.PRF.Algorithm, reencryptHint)
		}
	}
	if kdf.Iterations < 1 || kdf.Iterations > maxIterations {
		return nil, fmt.Errorf("private key asks for %d PBKDF2 iterations (accepted: 1 to %d); %s", kdf.Iterations, maxIterations, reencryptHint)
	}

	c, ok := pbes2Ciphers[params.Cipher.Algorithm.String()]
	if !ok {
		return nil, fmt.Errorf("private key is encrypted with the unsupported cipher %s; %s", params.Cipher.Algorithm, reencryptHint)
	}
	if kdf.KeyLength != 0 && kdf.KeyLength != c.keyLen {
		return nil, malformed("PBES2 parameters", fmt.Errorf("key length %d does not match the cipher", kdf.KeyLength))
	}
	var iv []byte
	if _, err := asn1.Unmarshal(params.Cipher.Parameters.FullBytes, &iv); err != nil {
		return nil, malformed("PBES2 cipher parameters", err)
	}
	return func(password []byte) ([]byte, error) {
		return pbes2Decrypt(epki.EncryptedData, password, prf, kdf, c, iv)
	}, nil
}

func pbes2Decrypt(data, password []byte, prf func() hash.Hash, kdf pbkdf2Params, c cbcCipher, iv []byte) ([]byte, error) {
	key, err := pbkdf2.Key(prf, string(password), kdf.Salt, kdf.Iterations, c.keyLen)
	if err != nil {
		return nil, fmt.Errorf("deriving the key-encryption key: %w", err)
	}
	block, err := c.block(key)
	if err != nil {
		return nil, err
	}
	plain, err := cbcDecrypt(block, iv, data)
	if err != nil {
		return nil, err
	}
	// A wrong passphrase passes the padding check about 1 time in 256; the
	// result is then garbage, which this catches.
	var info pkcs8Info
	if rest, err := asn1.Unmarshal(plain, &info); err != nil || len(rest) != 0 {
		return nil, ErrWrongPassword
	}
	return plain, nil
}

// cbcDecrypt decrypts and strips PKCS#7 padding; bad padding means the key
// was wrong.
func cbcDecrypt(block cipher.Block, iv, data []byte) ([]byte, error) {
	bs := block.BlockSize()
	if len(iv) != bs {
		return nil, malformed("encrypted private key", fmt.Errorf("IV is %d bytes, want %d", len(iv), bs))
	}
	if len(data) == 0 || len(data)%bs != 0 {
		return nil, malformed("encrypted private key", errors.New("ciphertext is not a whole number of blocks"))
	}
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, data)
	n := int(out[len(out)-1])
	if n == 0 || n > bs {
		return nil, ErrWrongPassword
	}
	for _, p := range out[len(out)-n:] {
		if int(p) != n {
			return nil, ErrWrongPassword
		}
	}
	return out[:len(out)-n], nil
}

// encryptPKCS8 wraps a PKCS#8 DER key as PBES2 / PBKDF2-HMAC-SHA256 /
// AES-256-CBC, the scheme imgtool keygen -p produces.
func encryptPKCS8(der, password []byte) ([]byte, error) {
	salt := make([]byte, 16)
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	key, err := pbkdf2.Key(sha256.New, string(password), salt, writeIterations, 32)
	if err != nil {
		return nil, fmt.Errorf("deriving the key-encryption key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	n := aes.BlockSize - len(der)%aes.BlockSize
	plain := make([]byte, len(der), len(der)+n)
	copy(plain, der)
	for range n {
		plain = append(plain, byte(n))
	}
	enc := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(enc, plain)

	kdfParams, err := asn1.Marshal(pbkdf2Params{
		Salt:       salt,
		Iterations: writeIterations,
		PRF:        pkix.AlgorithmIdentifier{Algorithm: oidHMACSHA256, Parameters: asn1.NullRawValue},
	})
	if err != nil {
		return nil, err
	}
	ivDER, err := asn1.Marshal(iv)
	if err != nil {
		return nil, err
	}
	pbes2, err := asn1.Marshal(pbes2Params{
		KDF:    pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdfParams}},
		Cipher: pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}},
	})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(encryptedPrivateKeyInfo{
		Algo:          pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: pbes2}},
		EncryptedData: enc,
	})
}

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}
