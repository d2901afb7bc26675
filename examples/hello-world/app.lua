-- examples/hello-world: the smallest moonwire app. Every setting is the default; this file is
-- here to show where configuration goes (docs/reference.md lists every key).
return {
  events = {
    onConnect = function(clientId)
      require("moonwire").log:info("hello-world: someone joined", { clientId = clientId })
    end,
  },
}
