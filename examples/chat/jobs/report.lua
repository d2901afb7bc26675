-- jobs/report.lua: the "report" queue. Computes a room's statistics from the stored messages
-- (how many, by whom, first and last) in the background; chat:report adds the job with the
-- asking client's id, so the result reaches that client as
-- {"type":"queue","action":"completed","data":{"jobId":..,"queue":"report","result":{...}}}.
return {
  concurrency = 2,  -- per worker
  timeout = 30,     -- seconds; a report that takes longer fails its attempt
  process = function(job, mw)
    local room = job.data.room
    local db = mw.database
    local totals = assert(db:query(
      "SELECT COUNT(*) AS messages, MIN(at) AS firstAt, MAX(at) AS lastAt FROM messages WHERE room = ?", room))
    local posters = assert(db:query([[
      SELECT nickname, COUNT(*) AS messages FROM messages WHERE room = ?
       GROUP BY nickname ORDER BY messages DESC, nickname LIMIT 5]], room))
    mw.timer:sleep(1) -- stands for the slow part of a real report (an export, an API call)
    local t = totals[1] or {}
    return {
      room = room,
      messages = tonumber(t.messages) or 0,
      firstAt = t.firstAt,
      lastAt = t.lastAt,
      topPosters = posters,
    }
  end,
}
