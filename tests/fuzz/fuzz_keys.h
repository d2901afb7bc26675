/* Test-only keys for fuzz_jwt (generated with openssl genpkey for this harness; they protect
 * nothing). RS256: RSA 2048; ES256: P-256. */
#ifndef FUZZ_KEYS_H
#define FUZZ_KEYS_H

static const char fuzz_rs256_private[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC3OjpJpPtvniCV\n"
    "tj9OcDLddoshqtG1EHnGc+PYPadsrH87TcCmuuD9fDvJucx4bhLuvFmHv5C6FJAQ\n"
    "h/83j0FPgp8Kb3nvsOY5EteSmnr0Rlnyo92Fz1ni4l8TjKmeeIRt1hnMZcDq7OPg\n"
    "XGY3OyGUrI7JI9pFSzgbKQ4rN19fRek4k1JSdvJa1tLDt7u4ewenhf7ekTuO/Trj\n"
    "NiqBt3gw88NjKcLUU5IVOjt7w9grRIjf8gFXiZkmqK7tPREs/AoYZ/+xmKEJ30K5\n"
    "qF0kriABiE6uDcqtJqGnYfocWEUELeHFY7Dra1RiAZFuxl3Yv5GyArw8mC05swyZ\n"
    "1LkREsI1AgMBAAECggEAAyCIxyH8MpL5zmROX0nV7GauCDSQoKz3zxXCQToIJfgp\n"
    "sbrpe078MQdSQ+aaYUHLq+xmAMWZtDtOnCGeDvYwcKlzimuNorQbscSrDjL5vzqG\n"
    "JXh7euGnkJI5ei1v5ab75538Ubs42CmT2AvrqKynLZDmXPNyMbWPbxM7zSwEQi15\n"
    "X7ivpbcXUlnUNZ5gTK3fp4guKS2+dNYAI6X+uNS36dBZFF8pwtMgLOGQWVcwQ1ks\n"
    "GhFcC5yQbpxZrkS4sTN9aeStEKP2Ch5TmDYbWNkqbmILJImvcG3lNynmZUeL4ePi\n"
    "+3lT7sVeUmciEaKdBxCK+lPDw0if3ZtI1ZBy+wLlnwKBgQDiHL3PXRETSvzFyorS\n"
    "4qgQynV9c2wUk9Ir4kCq/oRz02woD81D30mRSLIl9rxzhZIAMp39qj3OA/1ULNYQ\n"
    "+3yOAHraCuoVTCziv9/5f3VQuu4X8gQVj/kcQQQsnZZXt8vm1PTDIbCqHKWdeQvC\n"
    "F0l2vKhf3voSWnm9+cK16woL3wKBgQDPclYOe3dB81JtOoAgGLsy9zHDXh7xD+Q5\n"
    "/6tfDTnxIdjh/6afO1SeCVu+Vsl1O4NIMWZMd3wTplLw3ksWLvBLmRuBIT1wXzNp\n"
    "zw0KDMlIOgUYC9dcDeGAH0X8X8IBHF8ItCrb6bQBo+VmkPsdX9QqGBY/vrAJpzqU\n"
    "Wm01vVm0awKBgQCzACHbiUe9SD33rzJbZIe8UyrT144WdDeL+h9LvxXIQ/V5eZj8\n"
    "REYPN8egekYSBgnhEjE04ZLwBwSDoMMOyqh+Gi8nckCB/74A+/kpoReUg4d9eWB2\n"
    "WXXSQj41u8OLSbunz6q812zuHqOVmIAQdTL5RrzcuL6rzOhX1uOn9JwNbQKBgQDG\n"
    "BS9ujZ7ufnVdPO2XNeRkJyECjDLfC7thPdP5XOfFbPjZ6q7D6t/AJ9DCpZeS56dO\n"
    "35D2R0xSeX9M2/UzDMVmdJWTswYx4T5zryiUQlZVMsUwCgWeosVyBuhIm6PWaZ2x\n"
    "8kHDQJgKxMezG4wJozMkp299k+n4nQBHIvaCyOf7VwKBgDaAMXeDiQsARFeU06fG\n"
    "OGRpHbnGHg4/0JeyRz/Oi8RHSKyI5dCcv9NGxXYUgZE7tFl8eRXMtzrAqKiDFc1n\n"
    "JeO2JCMI94t8YPfM47RiNyopyxFCClythGdgpExITMtKoTRogLzit5Ll/0lXyMNS\n"
    "XHUOCXipgpGhrtaPh5W2FYCr\n"
    "-----END PRIVATE KEY-----\n";

static const char fuzz_rs256_public[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtzo6SaT7b54glbY/TnAy\n"
    "3XaLIarRtRB5xnPj2D2nbKx/O03Aprrg/Xw7ybnMeG4S7rxZh7+QuhSQEIf/N49B\n"
    "T4KfCm9577DmORLXkpp69EZZ8qPdhc9Z4uJfE4ypnniEbdYZzGXA6uzj4FxmNzsh\n"
    "lKyOySPaRUs4GykOKzdfX0XpOJNSUnbyWtbSw7e7uHsHp4X+3pE7jv064zYqgbd4\n"
    "MPPDYynC1FOSFTo7e8PYK0SI3/IBV4mZJqiu7T0RLPwKGGf/sZihCd9CuahdJK4g\n"
    "AYhOrg3KrSahp2H6HFhFBC3hxWOw62tUYgGRbsZd2L+RsgK8PJgtObMMmdS5ERLC\n"
    "NQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static const char fuzz_es256_private[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNSEHaT3ykNwyHupW\n"
    "gGZKE+7rkaRN1JBtljmxHHxFdaShRANCAATZIZjS/TxXtqt4DzcgCjJrw8r8bO2m\n"
    "t/wjlyYOTYgGHclHHW5T9Q7yZmKYhCMY26J/lX/c2V8K60XCV1K7/IOH\n"
    "-----END PRIVATE KEY-----\n";

static const char fuzz_es256_public[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2SGY0v08V7areA83IAoya8PK/Gzt\n"
    "prf8I5cmDk2IBh3JRx1uU/UO8mZimIQjGNuif5V/3NlfCutFwldSu/yDhw==\n"
    "-----END PUBLIC KEY-----\n";

#endif
