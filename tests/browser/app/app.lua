-- tests/browser/app: the app the browser-client tests (../client.test.mjs) run moonwire.js
-- against. Tokens are optional (anonymous pages work too); leeway 0 so that a token expires,
-- and its connection closes with 4401, exactly at `exp`; refreshBefore 0, so no auth/expiring
-- notice comes first (the refresh test starts a server of its own with one).
return {
  auth = { secret = "browser-client-tests-secret-0123456789abcdef", algorithm = "HS256",
           required = false, leeway = 0, refreshBefore = 0 },
}
