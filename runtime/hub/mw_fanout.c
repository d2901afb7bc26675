/* mw_fanout: mw_conn_send never closes or unregisters synchronously (a slow consumer it cuts
 * only starts its close handshake; the client leaves the containers when its socket closes,
 * later, from the loop), so the client list and the member lists stay put while a send walks
 * them. The bus is told before the containers free a room's name. */
#include "mw_fanout.h"

#include <stdlib.h>
#include <string.h>

#include "mw_conn.h"
#include "mw_log.h"

int mw_fanout_init(mw_fanout *fo, mw_bus *bus, mw_metrics_slot *m)
{
    fo->bus = bus;
    fo->m = m;
    if (mw_clients_init(&fo->clients) != 0)
        return -1;
    if (mw_rooms_init(&fo->rooms, MW_ROOMS_ROOMS) != 0) {
        mw_clients_free(&fo->clients);
        return -1;
    }
    if (mw_rooms_init(&fo->users, MW_ROOMS_USERS) != 0) {
        mw_clients_free(&fo->clients);
        mw_rooms_free(&fo->rooms);
        return -1;
    }
    return 0;
}

void mw_fanout_free(mw_fanout *fo)
{
    mw_clients_free(&fo->clients);
    mw_rooms_free(&fo->rooms);
    mw_rooms_free(&fo->users);
}

static void update_rooms_gauge(mw_fanout *fo) { mw_metrics_set(fo->m, MW_M_ROOMS, fo->rooms.count); }

void mw_fanout_add(mw_fanout *fo, mw_client *c)
{
    mw_clients_add(&fo->clients, c);
    if (c->user_key) {
        size_t klen = strlen(c->user_key);
        int first;
        if (mw_rooms_join(&fo->users, c, c->user_key, klen, &first) < 0)
            mw_logf(MW_LOG_WARN, "out of memory indexing a user's connection");
        else if (first)
            mw_bus_watch(fo->bus, MW_BUS_USER, c->user_key, klen, 1);
    }
}

/* Leaves every group of rs; a group left empty stops being watched on the bus. */
static void leave_every(mw_fanout *fo, mw_rooms *rs, mw_client *c)
{
    mw_memberships *ms = mw_rooms_of(rs, c);
    while (ms->n > 0) {
        mw_room *gone = mw_rooms_leave_slot(rs, c, ms->n - 1);
        if (gone) /* c was the last local member */
            mw_bus_watch(fo->bus, rs->kind == MW_ROOMS_USERS ? MW_BUS_USER : MW_BUS_ROOM, gone->name,
                         gone->name_len, 0);
        mw_room_free(gone);
    }
}

void mw_fanout_remove(mw_fanout *fo, mw_client *c)
{
    mw_clients_remove(&fo->clients, c);
    leave_every(fo, &fo->rooms, c);
    leave_every(fo, &fo->users, c);
    update_rooms_gauge(fo);
}

int mw_fanout_join(mw_fanout *fo, mw_client *c, const char *room, size_t len)
{
    int first;
    int rv = mw_rooms_join(&fo->rooms, c, room, len, &first);
    if (rv < 0)
        return -1;
    if (first)
        mw_bus_watch(fo->bus, MW_BUS_ROOM, room, len, 1);
    update_rooms_gauge(fo);
    return rv;
}

int mw_fanout_leave(mw_fanout *fo, mw_client *c, const char *room, size_t len)
{
    int last;
    int left = mw_rooms_leave(&fo->rooms, c, room, len, &last);
    if (last)
        mw_bus_watch(fo->bus, MW_BUS_ROOM, room, len, 0);
    update_rooms_gauge(fo);
    return left;
}

void mw_fanout_leave_all(mw_fanout *fo, mw_client *c)
{
    leave_every(fo, &fo->rooms, c);
    update_rooms_gauge(fo);
}

static int send_to(mw_client *c, mw_frame *f) { return c->conn && mw_conn_send(c->conn, f) == 0; }

int mw_fanout_send(mw_fanout *fo, const char *id, size_t id_len, const char *payload, size_t len, int binary,
                   int local_only)
{
    mw_client *c = mw_clients_find(&fo->clients, id, id_len);
    if (!c) {
        /* not here: if the id names another worker, the bus takes it there */
        int remote = !binary && !local_only && mw_bus_reaches(fo->bus, id, id_len);
        if (remote)
            mw_bus_publish(fo->bus, MW_BUS_CLIENT, id, id_len, NULL, 0, payload, len);
        return remote;
    }
    mw_frame *f = mw_frame_ws(binary ? 2 : 1, payload, len);
    if (!f)
        return -1;
    int ok = send_to(c, f);
    mw_frame_unref(f);
    return ok;
}

/* Queues f to every local client but exclude; returns how many took it. */
static long send_all(mw_fanout *fo, mw_frame *f, const mw_client *exclude)
{
    long n = 0;
    for (mw_client *c = fo->clients.head; c; c = c->all_next) /* a send unlinks nobody */
        if (c != exclude && send_to(c, f))
            n++;
    return n;
}

/* Queues f to every member of the group but exclude; returns how many took it. */
static long send_group(mw_room *r, mw_frame *f, const mw_client *exclude)
{
    long n = 0;
    for (uint32_t i = 0; i < r->n; i++)
        if (r->members[i].client != exclude && send_to(r->members[i].client, f))
            n++;
    return n;
}

static const mw_client *find_opt(const mw_fanout *fo, const char *id)
{
    return id ? mw_clients_find(&fo->clients, id, strlen(id)) : NULL;
}

const mw_client *mw_fanout_find_exclude(const mw_fanout *fo, const char *id) { return find_opt(fo, id); }

int mw_fanout_client_frame(mw_client *c, mw_frame *f) { return send_to(c, f); }

long mw_fanout_room_frame(mw_fanout *fo, mw_room *r, mw_frame *f, const mw_client *skip,
                          int (*hold)(void *arg, mw_client *c), void *arg)
{
    if (!hold)
        return send_group(r, f, skip);
    long n = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        mw_client *c = r->members[i].client;
        if (c != skip && !hold(arg, c) && send_to(c, f))
            n++;
    }
    return n;
}

long mw_fanout_broadcast(mw_fanout *fo, const char *payload, size_t len, const char *exclude_id, int local_only)
{
    if (!local_only)
        mw_bus_publish(fo->bus, MW_BUS_ALL, NULL, 0, exclude_id, 0, payload, len);
    if (fo->clients.count == 0)
        return 0;
    mw_frame *f = mw_frame_ws(1, payload, len);
    if (!f)
        return -1;
    long n = send_all(fo, f, find_opt(fo, exclude_id));
    mw_frame_unref(f);
    return n;
}

/* Frames payload once for the members of name in rs. */
static long to_group(mw_fanout *fo, mw_rooms *rs, const char *name, size_t name_len, const char *payload,
                     size_t len, const char *exclude_id)
{
    mw_room *r = mw_rooms_find(rs, name, name_len);
    if (!r)
        return 0;
    mw_frame *f = mw_frame_ws(1, payload, len);
    if (!f)
        return -1;
    long n = send_group(r, f, find_opt(fo, exclude_id));
    mw_frame_unref(f);
    return n;
}

long mw_fanout_room(mw_fanout *fo, const char *room, size_t room_len, const char *payload, size_t len,
                    const char *exclude_id, int local_only)
{
    if (!local_only)
        mw_bus_publish(fo->bus, MW_BUS_ROOM, room, room_len, exclude_id, 0, payload, len);
    return to_group(fo, &fo->rooms, room, room_len, payload, len, exclude_id);
}

long mw_fanout_user(mw_fanout *fo, const char *key, size_t key_len, const char *payload, size_t len,
                    int local_only)
{
    if (!local_only)
        mw_bus_publish(fo->bus, MW_BUS_USER, key, key_len, NULL, 0, payload, len);
    return to_group(fo, &fo->users, key, key_len, payload, len, NULL);
}

int mw_fanout_disconnect(mw_fanout *fo, const char *id, size_t id_len, int code, const char *reason)
{
    mw_client *c = mw_clients_find(&fo->clients, id, id_len);
    if (!c) {
        int remote = mw_bus_reaches(fo->bus, id, id_len);
        if (remote)
            mw_bus_publish(fo->bus, MW_BUS_DISCONNECT, id, id_len, NULL, code, reason, strlen(reason));
        return remote;
    }
    if (c->conn)
        mw_conn_close_ws(c->conn, (uint16_t)code, reason);
    return 1;
}

/* Starts the close handshake of every local connection of a user (the closes complete later:
 * the user's list is not changed while it is walked). */
static long close_user(mw_fanout *fo, const char *key, size_t key_len, int code, const char *reason)
{
    mw_room *u = mw_rooms_find(&fo->users, key, key_len);
    long n = 0;
    for (uint32_t i = 0; u && i < u->n; i++) {
        mw_client *c = u->members[i].client;
        if (c->conn) {
            mw_conn_close_ws(c->conn, (uint16_t)code, reason);
            n++;
        }
    }
    return n;
}

long mw_fanout_disconnect_user(mw_fanout *fo, const char *key, size_t key_len, int code, const char *reason)
{
    mw_bus_publish(fo->bus, MW_BUS_USER_DISCONNECT, key, key_len, NULL, code, reason, strlen(reason));
    return close_user(fo, key, key_len, code, reason);
}

void mw_fanout_deliver(mw_fanout *fo, const mw_bus_msg *m)
{
    if (m->kind == MW_BUS_USER_DISCONNECT) {
        char reason[124];
        size_t rl = m->payload_len < sizeof(reason) - 1 ? m->payload_len : sizeof(reason) - 1;
        memcpy(reason, m->payload, rl);
        reason[rl] = '\0';
        if (m->name)
            close_user(fo, m->name, m->name_len, atoi(m->code), reason);
        return;
    }
    if (m->kind == MW_BUS_DISCONNECT) {
        mw_client *c = mw_clients_find(&fo->clients, m->target, m->target_len);
        if (c && c->conn) {
            char reason[124];
            size_t rl = m->payload_len < sizeof(reason) - 1 ? m->payload_len : sizeof(reason) - 1;
            memcpy(reason, m->payload, rl);
            reason[rl] = '\0';
            mw_conn_close_ws(c->conn, (uint16_t)atoi(m->code), reason);
        }
        return;
    }
    if (m->kind != MW_BUS_ALL && m->kind != MW_BUS_ROOM && m->kind != MW_BUS_USER && m->kind != MW_BUS_CLIENT)
        return;
    const mw_client *skip = m->exclude_len ? mw_clients_find(&fo->clients, m->exclude, m->exclude_len) : NULL;
    mw_frame *f = mw_frame_ws(1, m->payload, m->payload_len);
    if (!f)
        return;
    mw_room *r;
    switch (m->kind) {
    case MW_BUS_ALL:
        send_all(fo, f, skip);
        break;
    case MW_BUS_ROOM:
        if (m->name && (r = mw_rooms_find(&fo->rooms, m->name, m->name_len)))
            send_group(r, f, skip);
        break;
    case MW_BUS_USER:
        if (m->name && (r = mw_rooms_find(&fo->users, m->name, m->name_len)))
            send_group(r, f, NULL);
        break;
    case MW_BUS_CLIENT: {
        mw_client *c = mw_clients_find(&fo->clients, m->target, m->target_len);
        if (c)
            send_to(c, f);
        break;
    }
    }
    mw_frame_unref(f);
}
