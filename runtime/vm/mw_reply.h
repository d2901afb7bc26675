/* mw_reply: the reply frame of the wire protocol, {"type":T,"action":A[,"response":R]
 * [,"requestId":ID]}, and the requestId as replies and error frames echo it. Built in C into one
 * buffer (no intermediate Lua strings: this is the frame every request earns); the router keeps
 * the '{"type":T,"action":A' prefix per route (frames.reply_prefix). */
#ifndef MW_REPLY_H
#define MW_REPLY_H

#include "mw_json.h"

struct lua_State;

/* Appends the requestId at idx as it is echoed: a string as a JSON string, an integer below 2^53
 * in magnitude in full, any other finite number with 17 significant digits. Returns 1 when
 * appended, 0 when the value is no id (NaN, an infinity, not a string or number: nothing
 * appended), -1 when out of memory. [-0, +0] */
int mw_reply_put_id(struct lua_State *L, int idx, mw_json_buf *out);

/* Appends the reply: the string at prefix, then ,"response":<the value at response encoded>
 * unless it is nil, then ,"requestId":<id> unless rid is no id, then }. On error (a response
 * that cannot be encoded, out of memory) returns -1 with the reason in err; out then holds a
 * partial text. [-0, +0] */
int mw_reply_encode(struct lua_State *L, int prefix, int response, int rid, mw_json_buf *out, char *err,
                    size_t errlen);

/* Adds reply(prefix, response, rid) -> text (raises when response cannot be encoded) and
 * encode_id(rid) -> text or nil to the table on top of the stack (the wire module). [-0, +0] */
void mw_reply_add_functions(struct lua_State *L);

#endif
