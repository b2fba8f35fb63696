// OpenSSL libcrypto: EVP digests (MD5, SHA-256) and, later, AES-256-GCM.
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
