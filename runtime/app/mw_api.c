/* mw_api: a ticket names a slot and its generation, so a late reply (the client went away, the
 * slot was reused) finds no waiting call and is dropped. */
#include "mw_api.h"

#include <string.h>

#include "mw_lvm.h"

#define SLOT_BITS 10 /* MW_API_SLOTS == 1 << SLOT_BITS */

void mw_api_init(mw_api *a, mw_httpd *httpd, struct mw_lvm **lvm, double wait_s)
{
    memset(a, 0, sizeof(*a));
    a->httpd = httpd;
    a->lvm = lvm;
    a->wait_s = wait_s;
}

static mw_api_slot *slot_of(mw_api *a, uint64_t ticket)
{
    mw_api_slot *s = &a->slots[ticket & (MW_API_SLOTS - 1)];
    return s->c && s->ticket == ticket ? s : NULL;
}

void mw_api_call(mw_api *a, mw_conn *c, int method, const char *name, size_t name_len, const char *body,
                 size_t body_len, uint64_t start_ns)
{
    mw_api_slot *s = NULL;
    for (uint32_t i = 0; i < MW_API_SLOTS && !s; i++) {
        uint32_t k = (a->hint + i) & (MW_API_SLOTS - 1);
        if (!a->slots[k].c)
            s = &a->slots[k];
    }
    if (!s || !*a->lvm) {
        static const char busy[] = "{\"error\":{\"code\":\"unavailable\",\"message\":\"Too many API calls in flight\"}}";
        mw_httpd_api_answer(a->httpd, c, method, name, name_len, 503, busy, sizeof(busy) - 1, start_ns);
        return;
    }
    uint32_t index = (uint32_t)(s - a->slots);
    a->hint = index + 1;
    a->generation = (a->generation + 1) & ((1ull << 40) - 1); /* tickets stay exact in a Lua number */
    s->c = c;
    s->ticket = (a->generation << SLOT_BITS) | index;
    s->method = method;
    s->start_ns = start_ns;
    s->name_len = name_len < sizeof(s->name) ? name_len : sizeof(s->name);
    memcpy(s->name, name, s->name_len);
    mw_conn_http_wait(c, s->ticket, (uint64_t)(a->wait_s * 1000));
    mw_lvm_on_api(*a->lvm, s->ticket, name, name_len, body, body_len); /* may answer at once */
}

void mw_api_reply(mw_api *a, uint64_t ticket, int status, const char *json, size_t len)
{
    mw_api_slot *s = slot_of(a, ticket);
    if (!s)
        return;
    mw_conn *c = s->c;
    s->c = NULL;
    c->http_ticket = 0;
    if (mw_conn_http_waiting(c))
        mw_httpd_api_answer(a->httpd, c, s->method, s->name, s->name_len, status, json, len, s->start_ns);
}

void mw_api_dropped(mw_api *a, mw_conn *c, uint64_t ticket)
{
    mw_api_slot *s = slot_of(a, ticket);
    if (s && s->c == c)
        s->c = NULL;
}
