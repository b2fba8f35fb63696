// OpenSSL libcrypto: EVP digests (MD5, SHA-256), AES-256-GCM, HMAC, scrypt,
// and the system's cryptographic random number generator.
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
