package pkcs11key

// SessionPoolSize is how many PKCS#11 sessions this package uses per token
// at once. A daemon bounds its concurrent token operations to it, so
// requests queue in the daemon rather than inside this package.
const SessionPoolSize = poolSize

// ResolveModule returns the canonical path of the PKCS#11 library a URI
// with module-path=path would use; an empty path means the default
// (MCUSIGN_PKCS11_MODULE, else the system SoftHSM2).
func ResolveModule(path string) (string, error) {
	return modulePath(&URI{ModulePath: path})
}
