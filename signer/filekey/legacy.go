package filekey

import (
	"crypto/aes"
	"crypto/des"
	"crypto/md5"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// legacyCiphers are the DEK-Info ciphers of OpenSSL's traditional PEM
// encryption ("Proc-Type: 4,ENCRYPTED"), as written by `openssl genrsa -aes256`
// before OpenSSL 3.
var legacyCiphers = map[string]cbcCipher{
	"DES-CBC":      {8, des.NewCipher},
	"DES-EDE3-CBC": {24, des.NewTripleDESCipher},
	"AES-128-CBC":  {16, aes.NewCipher},
	"AES-192-CBC":  {24, aes.NewCipher},
	"AES-256-CBC":  {32, aes.NewCipher},
}

// legacyDecrypter checks a traditional encrypted PEM block's headers and
// returns the function that decrypts it.
func legacyDecrypter(b *pem.Block) (func(password []byte) ([]byte, error), error) {
	alg, ivHex, ok := strings.Cut(b.Headers["DEK-Info"], ",")
	if !ok {
		return nil, malformed("encrypted PEM", errors.New("missing or bad DEK-Info header"))
	}
	c, ok := legacyCiphers[strings.ToUpper(strings.TrimSpace(alg))]
	if !ok {
		return nil, fmt.Errorf("private key is encrypted with the unsupported PEM cipher %s; %s", alg, reencryptHint)
	}
	iv, err := hex.DecodeString(strings.TrimSpace(ivHex))
	if err != nil || len(iv) < 8 {
		return nil, malformed("encrypted PEM", errors.New("bad IV in DEK-Info header"))
	}
	return func(password []byte) ([]byte, error) {
		return legacyDecrypt(b.Bytes, password, c, iv)
	}, nil
}

func legacyDecrypt(data, password []byte, c cbcCipher, iv []byte) ([]byte, error) {
	block, err := c.block(evpBytesToKey(password, iv[:8], c.keyLen))
	if err != nil {
		return nil, err
	}
	plain, err := cbcDecrypt(block, iv, data)
	if err != nil {
		return nil, err
	}
	var raw asn1.RawValue
	if rest, err := asn1.Unmarshal(plain, &raw); err != nil || len(rest) != 0 || raw.Tag != asn1.TagSequence {
		return nil, ErrWrongPassword
	}
	return plain, nil
}

// evpBytesToKey is OpenSSL's EVP_BytesToKey with MD5 and one iteration, the
// key derivation of traditional PEM encryption (weak, but it is the format).
func evpBytesToKey(password, salt []byte, keyLen int) []byte {
	var key, prev []byte
	for len(key) < keyLen {
		h := md5.New()
		h.Write(prev)
		h.Write(password)
		h.Write(salt)
		prev = h.Sum(nil)
		key = append(key, prev...)
	}
	return key[:keyLen]
}
