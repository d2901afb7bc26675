-- Benchmark app: the load generator sends far more than the default 100 messages/s per
-- connection, so the rate limit is lifted; nothing is stored, so the database is in memory.
return {
  limits = { rate = { messages = 1000000, per = 1, burst = 1000000 } },
  database = { url = "sqlite::memory:" },
}
