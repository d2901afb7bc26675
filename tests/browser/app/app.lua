-- tests/browser/app: the app the browser-client tests (../client.test.mjs) run moonwire.js
-- against. Tokens are optional (anonymous pages work too); leeway 0 so that a token expires,
-- and its connection closes with 4401, exactly at `exp`; refreshBefore 0, so no auth/expiring
-- notice comes first (the refresh test starts a server of its own with one).
return {
  auth = { secret = "browser-client-tests-secret-0123456789abcdef", algorithm = "HS256",
           required = false, leeway = 0, refreshBefore = 0 },
  -- rooms hist:* keep a history: moonwire.js recovers what it missed while disconnected
  -- rooms pres:* list their members and tell them who joins and leaves; vip:* only with a claim
  rooms = { options = { { pattern = "hist:*", history = { size = 50, ttl = 600 } },
                        { pattern = "pres:*", presence = true, joinLeave = true },
                        { pattern = "vip:*", canJoin = function(clientId, room, client)
                            return client.user ~= nil and client.user.payload.vip == true end } } },
}
