/**
 * Fixed test credentials for Debian's docker-registry (so tests need no openssl or
 * htpasswd at run time): an EC P-256 token-signing key with its self-signed
 * certificate (valid 2000–2099), and a bcrypt htpasswd line.
 */
export const TOKEN_KEY_PEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgEK1x8p89wsv6cPiM
otNeTC0Lxy9KehkLIPIlqbmXKwWhRANCAASTaaghxONeiiiQ7pLhmAz0HZ9dLj/h
umsyS5r0wNrAW6Fs6TG488ZnZA/ioLkrbLGZ053bRe6B61wdoZLay02W
-----END PRIVATE KEY-----
`;

export const TOKEN_CERT_PEM = `-----BEGIN CERTIFICATE-----
MIIBdDCCARugAwIBAgIBATAKBggqhkjOPQQDAjAhMR8wHQYDVQQDDBZraWxuLXRl
c3QtdG9rZW4taXNzdWVyMCAXDTAwMDEwMTAwMDAwMFoYDzIwOTkxMjMxMDAwMDAw
WjAhMR8wHQYDVQQDDBZraWxuLXRlc3QtdG9rZW4taXNzdWVyMFkwEwYHKoZIzj0C
AQYIKoZIzj0DAQcDQgAEk2moIcTjXoookO6S4ZgM9B2fXS4/4bprMkua9MDawFuh
bOkxuPPGZ2QP4qC5K2yxmdOd20XugetcHaGS2stNlqNCMEAwDwYDVR0TAQH/BAUw
AwEB/zAOBgNVHQ8BAf8EBAMCAoQwHQYDVR0OBBYEFCbMe2BUwVgX2LQJJtAtLufl
hCz2MAoGCCqGSM49BAMCA0cAMEQCIAEsTe+OQ9zMyjy2YbpJqAIYpufpyF78iKHp
hSC6i5cYAiBwuCqsSkheXs8WUXdQNbS7/pMxFt+pdld2hcfVrbgTTQ==
-----END CERTIFICATE-----
`;

export const REGISTRY_USER = "kiln";
export const REGISTRY_PASSWORD = "kiln-secret";
/** bcrypt of REGISTRY_PASSWORD (docker-registry's htpasswd accepts only bcrypt). */
export const HTPASSWD = `${REGISTRY_USER}:$2b$12$TBJy7FxTg1G7JZ0cNaujt.4fFw2ekKnttZffvV40YkZirw2mtqsbO\n`;
