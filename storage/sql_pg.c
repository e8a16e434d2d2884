/* sql_pg.c: the PostgreSQL driver behind storage/sql.h, over libpq.
 *
 * A statement runs at its first step with PQsendQueryParams: `?` rewritten
 * to `$N`, integers, doubles and blobs sent binary with their types, text
 * as untyped so the server infers it from the context as SQLite would
 * accept it. Rows come back binary one at a time (single-row mode), so a
 * scan of every vector of an instance never holds the whole result. One
 * connection runs one query at a time: a statement started while another
 * one's rows are still arriving first reads the rest of those into memory
 * (rare: callers read their rows, then write).
 *
 * A lost connection (the server restarted) is reopened before the next
 * statement; a read or BEGIN that meets a connection that broke under it
 * is sent once more on a new one. A write outside a transaction is not
 * resent: it may have been applied before the connection dropped. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "storage/pg_value.h"
#include "storage/sql_driver.h"

struct pg_conn {
    struct sql_conn base;
    PGconn *pg;
    struct pg_stmt *streaming; /* whose rows are still arriving */
};

struct pg_param {
    int kind; /* enum sql_bind_kind */
    unsigned char num[8];
    const void *p;
    size_t n;
};

enum pg_state { ST_IDLE, ST_STREAMING, ST_DRAINED, ST_DONE };

struct pg_stmt {
    struct sql_stmt base;
    char *sql;
    int nparams;
    struct pg_param *params;
    int retry_safe;
    enum pg_state state;
    PGresult *row; /* the current row */
    /* Rows read ahead for another statement's sake, then how it ended. */
    PGresult **queue;
    size_t qn, qcap, qhead;
    enum sql_rc final;
    char *final_err;
    long long final_changes;
    char (*scratch)[40]; /* numbers read as text, one per column */
    int nscratch;
};

static struct pg_conn *pc_of(struct sql_conn *c)
{
    return (struct pg_conn *)c;
}

static struct pg_stmt *ps_of(struct sql_stmt *st)
{
    return (struct pg_stmt *)st;
}

/* libpq's messages on one line ("FATAL: ...\nserver closed the connection
 * ..." spans three), for logs and error replies. */
static void one_line(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        char ch = *r == '\n' || *r == '\t' ? ' ' : *r;
        if (ch == ' ' && (w == s || w[-1] == ' '))
            continue;
        *w++ = ch;
    }
    while (w > s && w[-1] == ' ')
        w--;
    *w = '\0';
}

static void set_conn_error(struct sql_conn *c, const char *what)
{
    const char *msg = PQerrorMessage(pc_of(c)->pg);
    sql_set_error(c, "%s%s%s", what ? what : "", what ? ": " : "",
                  msg && *msg ? msg : "connection failed");
    one_line(c->err);
}

/* The primary message and SQLSTATE of a failed result; returns the rc it
 * maps to (class 23, integrity constraint violation: SQL_CONSTRAINT). */
static enum sql_rc result_error(struct sql_conn *c, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (msg)
        sql_set_error(c, "%s (SQLSTATE %s)", msg, state ? state : "?");
    else
        set_conn_error(c, NULL);
    return state && !strncmp(state, "23", 2) ? SQL_CONSTRAINT : SQL_ERROR;
}

/* Notices (CREATE ... IF NOT EXISTS on an existing table) are noise; a
 * warning is worth a line in the log. */
static void on_notice(void *arg, const char *msg)
{
    (void)arg;
    if (strncmp(msg, "NOTICE", 6) != 0 && strncmp(msg, "DEBUG", 5) != 0)
        fprintf(stderr, "postgres: %s", msg);
}

static int pg_open(const char *dsn, struct sql_conn **out, char *errbuf, size_t errlen)
{
    struct pg_conn *pc = calloc(1, sizeof *pc);
    if (!pc) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    pc->base.drv = &sql_pg_driver;
    /* Defaults before dbname, which the DSN expands into and may override;
     * the encoding after it: the storage code sends and expects UTF-8. */
    const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname",
                                "client_encoding", NULL};
    const char *const vals[] = {"10", "imgsearchd", dsn, "UTF8", NULL};
    pc->pg = PQconnectdbParams(keys, vals, 1);
    if (!pc->pg || PQstatus(pc->pg) != CONNECTION_OK) {
        snprintf(errbuf, errlen, "cannot connect to PostgreSQL: %s",
                 pc->pg ? PQerrorMessage(pc->pg) : "out of memory");
        one_line(errbuf);
        PQfinish(pc->pg);
        free(pc);
        return -1;
    }
    PQsetNoticeProcessor(pc->pg, on_notice, NULL);
    *out = &pc->base;
    return 0;
}

static void pg_close(struct sql_conn *c)
{
    PQfinish(pc_of(c)->pg);
    free(c);
}

/* --- the connection's one running query ---------------------------------- */

static void clear_rows(struct pg_stmt *ps)
{
    PQclear(ps->row);
    ps->row = NULL;
    for (size_t i = ps->qhead; i < ps->qn; i++)
        PQclear(ps->queue[i]);
    ps->qn = ps->qhead = 0;
}

/* Reads what is left of the running query; keeps its rows in the queue
 * when keep, and its outcome in ps->final either way. */
static void read_rest(struct pg_stmt *ps, int keep)
{
    struct pg_conn *pc = pc_of(ps->base.conn);
    PGresult *r;
    ps->final = SQL_DONE;
    while ((r = PQgetResult(pc->pg)) != NULL) {
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_SINGLE_TUPLE && keep) {
            if (ps->qn == ps->qcap) {
                size_t cap = ps->qcap ? ps->qcap * 2 : 64;
                PGresult **g = realloc(ps->queue, cap * sizeof *g);
                if (!g) {
                    PQclear(r);
                    ps->final = SQL_ERROR;
                    free(ps->final_err);
                    ps->final_err = strdup("out of memory reading rows ahead");
                    continue;
                }
                ps->queue = g;
                ps->qcap = cap;
            }
            ps->queue[ps->qn++] = r;
            continue;
        }
        if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK) {
            ps->final_changes = atoll(PQcmdTuples(r));
        } else if (s != PGRES_SINGLE_TUPLE) {
            ps->final = result_error(ps->base.conn, r);
            free(ps->final_err);
            ps->final_err = strdup(ps->base.conn->err);
        }
        PQclear(r);
    }
    if (pc->streaming == ps)
        pc->streaming = NULL;
}

/* Makes the connection free for a new query. An error ending the other
 * statement's rows is its own, reported when it steps there, not this
 * call's. */
static void take_conn(struct pg_conn *pc)
{
    struct pg_stmt *other = pc->streaming;
    if (other) {
        struct sql_conn saved = pc->base;
        read_rest(other, 1);
        other->state = ST_DRAINED;
        pc->base = saved;
    }
}

/* Reopens a connection the server dropped. Between transactions the
 * socket is read without blocking first: a server that restarted has
 * closed it, and only reading finds that out. */
static int ensure_conn(struct pg_conn *pc)
{
    if (PQstatus(pc->pg) == CONNECTION_OK && PQtransactionStatus(pc->pg) == PQTRANS_IDLE)
        PQconsumeInput(pc->pg);
    if (PQstatus(pc->pg) == CONNECTION_OK)
        return 0;
    PQreset(pc->pg);
    if (PQstatus(pc->pg) != CONNECTION_OK) {
        set_conn_error(&pc->base, "PostgreSQL connection lost");
        return -1;
    }
    return 0;
}

/* The connection broke during a statement sent outside a transaction. */
static int lost_between_txns(struct pg_conn *pc, int was_idle)
{
    return was_idle && PQstatus(pc->pg) == CONNECTION_BAD;
}

static PGresult *exec_once(struct pg_conn *pc, const char *sql, int retry)
{
    take_conn(pc);
    if (ensure_conn(pc) != 0)
        return NULL;
    int was_idle = PQtransactionStatus(pc->pg) == PQTRANS_IDLE;
    PGresult *r = PQexec(pc->pg, sql);
    ExecStatusType s = PQresultStatus(r);
    if (retry && s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && lost_between_txns(pc, was_idle)) {
        PQclear(r);
        return exec_once(pc, sql, 0);
    }
    return r;
}

static int run(struct sql_conn *c, const char *sql, int retry, char *tag, size_t taglen)
{
    PGresult *r = exec_once(pc_of(c), sql, retry);
    if (!r && c->failed)
        return -1;
    ExecStatusType s = PQresultStatus(r);
    int rc = 0;
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
        c->changes = atoll(PQcmdTuples(r));
        if (tag)
            snprintf(tag, taglen, "%s", PQcmdStatus(r));
    } else {
        result_error(c, r);
        rc = -1;
    }
    PQclear(r);
    return rc;
}

static int pg_exec(struct sql_conn *c, const char *sql)
{
    return run(c, sql, 0, NULL, 0);
}

/* READ COMMITTED: writers of one instance queue on its row lock (every
 * item write updates instances.change_seq first). */
static int pg_begin(struct sql_conn *c)
{
    return run(c, "BEGIN", 1, NULL, 0);
}

/* PostgreSQL answers COMMIT of a transaction in which a statement failed
 * with a ROLLBACK tag and no error: that is a failed commit here. */
static int pg_commit(struct sql_conn *c)
{
    char tag[32] = "";
    if (run(c, "COMMIT", 0, tag, sizeof tag) != 0)
        return -1;
    if (strcmp(tag, "COMMIT") != 0) {
        sql_set_error(c, "transaction rolled back (a statement in it failed)");
        return -1;
    }
    return 0;
}

static int pg_in_txn(struct sql_conn *c)
{
    PGTransactionStatusType t = PQtransactionStatus(pc_of(c)->pg);
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

static void pg_rollback(struct sql_conn *c)
{
    struct pg_conn *pc = pc_of(c);
    take_conn(pc);
    if (pg_in_txn(c))
        PQclear(PQexec(pc->pg, "ROLLBACK"));
}

/* --- statements ---------------------------------------------------------- */

static struct sql_stmt *pg_prepare(struct sql_conn *c, const char *sql)
{
    struct pg_stmt *ps = calloc(1, sizeof *ps);
    if (!ps || !(ps->sql = pgv_rewrite(sql, &ps->nparams)) ||
        !(ps->params = calloc((size_t)ps->nparams + 1, sizeof *ps->params))) {
        if (ps)
            free(ps->sql);
        free(ps);
        sql_set_error(c, "out of memory or too many parameters");
        return NULL;
    }
    ps->base.conn = c;
    ps->retry_safe = pgv_retry_safe(sql);
    return &ps->base;
}

static void pg_reset(struct sql_stmt *st)
{
    struct pg_stmt *ps = ps_of(st);
    if (ps->state == ST_STREAMING)
        read_rest(ps, 0);
    clear_rows(ps);
    free(ps->final_err);
    ps->final_err = NULL;
    ps->state = ST_IDLE;
}

static void pg_finalize(struct sql_stmt *st)
{
    struct pg_stmt *ps = ps_of(st);
    pg_reset(st);
    free(ps->queue);
    free(ps->scratch);
    free(ps->params);
    free(ps->sql);
    free(ps);
}

static int pg_bind(struct sql_stmt *st, int i, int kind, int64_t iv, double dv, const void *p,
                   size_t n)
{
    struct pg_stmt *ps = ps_of(st);
    if (i < 1 || i > ps->nparams || n > 0x7fffffff)
        return -1;
    struct pg_param *pp = &ps->params[i - 1];
    pp->kind = kind;
    pp->p = p;
    pp->n = n;
    if (kind == SQLB_INT)
        pgv_put_int64(pp->num, iv);
    else if (kind == SQLB_DOUBLE)
        pgv_put_double(pp->num, dv);
    return 0;
}

/* Sends the statement with its parameters, rows to come one at a time. */
static int send_query(struct pg_stmt *ps)
{
    struct pg_conn *pc = pc_of(ps->base.conn);
    int n = ps->nparams;
    /* One block for the four arrays libpq wants (up to 32767 parameters:
     * too many for a request thread's stack). */
    size_t each = sizeof(Oid) + sizeof(char *) + 2 * sizeof(int);
    char *block = malloc((size_t)(n + 1) * each);
    if (!block) {
        sql_set_error(&pc->base, "out of memory");
        return -1;
    }
    const char **values = (const char **)block;
    Oid *types = (Oid *)(values + n + 1);
    int *lengths = (int *)(types + n + 1), *formats = lengths + n + 1;
    for (int i = 0; i < n; i++) {
        struct pg_param *pp = &ps->params[i];
        types[i] = 0;
        values[i] = NULL;
        lengths[i] = 0;
        formats[i] = 1;
        switch (pp->kind) {
        case SQLB_INT:
        case SQLB_DOUBLE:
            types[i] = pp->kind == SQLB_INT ? PGV_INT8 : PGV_FLOAT8;
            values[i] = (const char *)pp->num;
            lengths[i] = 8;
            break;
        case SQLB_TEXT:
            values[i] = pp->p;
            formats[i] = 0;
            break;
        case SQLB_BLOB:
            types[i] = PGV_BYTEA;
            /* An empty blob is not NULL: any non-NULL pointer will do. */
            values[i] = pp->n ? pp->p : "";
            lengths[i] = (int)pp->n;
            break;
        default:
            break;
        }
    }
    int ok = PQsendQueryParams(pc->pg, ps->sql, n, types, values, lengths, formats, 1);
    free(block);
    if (!ok) {
        set_conn_error(&pc->base, NULL);
        ps->state = ST_DONE;
        return -1;
    }
    PQsetSingleRowMode(pc->pg);
    pc->streaming = ps;
    ps->state = ST_STREAMING;
    return 0;
}

/* The next row of the running query, or how it ended. */
static enum sql_rc next_row(struct pg_stmt *ps)
{
    struct sql_conn *c = ps->base.conn;
    PGresult *r = PQgetResult(pc_of(c)->pg);
    ExecStatusType s = PQresultStatus(r);
    if (r && s == PGRES_SINGLE_TUPLE) {
        ps->row = r;
        return SQL_ROW;
    }
    enum sql_rc rc = SQL_DONE;
    if (r && (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK))
        c->changes = atoll(PQcmdTuples(r));
    else
        rc = result_error(c, r);
    PQclear(r);
    char saved[sizeof c->err];
    snprintf(saved, sizeof saved, "%s", c->err);
    read_rest(ps, 0); /* only the terminating NULL is left */
    if (rc != SQL_DONE)
        sql_set_error(c, "%s", saved);
    ps->state = ST_DONE;
    ps->final = rc;
    return rc;
}

static enum sql_rc start(struct pg_stmt *ps)
{
    struct pg_conn *pc = pc_of(ps->base.conn);
    for (int attempt = 0;; attempt++) {
        take_conn(pc);
        if (ensure_conn(pc) != 0) {
            ps->state = ST_DONE;
            return SQL_ERROR;
        }
        int was_idle = PQtransactionStatus(pc->pg) == PQTRANS_IDLE;
        enum sql_rc rc = send_query(ps) == 0 ? next_row(ps) : SQL_ERROR;
        if (rc != SQL_ERROR || attempt > 0 || !ps->retry_safe || !lost_between_txns(pc, was_idle))
            return rc;
        fprintf(stderr, "postgres: %s; reconnecting\n", ps->base.conn->err);
    }
}

static enum sql_rc pg_step(struct sql_stmt *st)
{
    struct pg_stmt *ps = ps_of(st);
    PQclear(ps->row);
    ps->row = NULL;
    switch (ps->state) {
    case ST_STREAMING:
        return next_row(ps);
    case ST_DRAINED:
        if (ps->qhead < ps->qn) {
            ps->row = ps->queue[ps->qhead++];
            return SQL_ROW;
        }
        ps->state = ST_DONE;
        st->conn->changes = ps->final_changes;
        if (ps->final != SQL_DONE)
            sql_set_error(st->conn, "%s", ps->final_err ? ps->final_err : "query failed");
        return ps->final;
    case ST_DONE: /* stepping past the end runs it again, as SQLite does */
        pg_reset(st);
        return start(ps);
    default:
        return start(ps);
    }
}

/* --- columns ------------------------------------------------------------- */

static int has_col(struct pg_stmt *ps, int col)
{
    return ps->row && col >= 0 && col < PQnfields(ps->row);
}

static int pg_col_is_null(struct sql_stmt *st, int col)
{
    struct pg_stmt *ps = ps_of(st);
    return !has_col(ps, col) || PQgetisnull(ps->row, 0, col);
}

static int64_t pg_col_int64(struct sql_stmt *st, int col)
{
    struct pg_stmt *ps = ps_of(st);
    if (pg_col_is_null(st, col))
        return 0;
    return pgv_int64(PQftype(ps->row, col), PQgetvalue(ps->row, 0, col),
                     PQgetlength(ps->row, 0, col));
}

static double pg_col_double(struct sql_stmt *st, int col)
{
    struct pg_stmt *ps = ps_of(st);
    if (pg_col_is_null(st, col))
        return 0;
    return pgv_double(PQftype(ps->row, col), PQgetvalue(ps->row, 0, col),
                      PQgetlength(ps->row, 0, col));
}

/* libpq ends every value with a NUL, binary ones too, so text and bytea
 * values serve as C strings as they are. */
static const char *pg_col_text(struct sql_stmt *st, int col)
{
    struct pg_stmt *ps = ps_of(st);
    if (pg_col_is_null(st, col))
        return NULL;
    Oid t = PQftype(ps->row, col);
    const char *v = PQgetvalue(ps->row, 0, col);
    if (pgv_is_text(t))
        return v;
    if (col >= ps->nscratch) {
        int n = PQnfields(ps->row);
        void *g = realloc(ps->scratch, (size_t)n * sizeof *ps->scratch);
        if (!g)
            return NULL;
        ps->scratch = g;
        ps->nscratch = n;
    }
    return pgv_number_text(t, v, PQgetlength(ps->row, 0, col), ps->scratch[col],
                           sizeof ps->scratch[col]);
}

static const void *pg_col_blob(struct sql_stmt *st, int col)
{
    return pg_col_text(st, col);
}

static int pg_col_bytes(struct sql_stmt *st, int col)
{
    struct pg_stmt *ps = ps_of(st);
    if (pg_col_is_null(st, col))
        return 0;
    if (pgv_is_text(PQftype(ps->row, col)))
        return PQgetlength(ps->row, 0, col);
    const char *t = pg_col_text(st, col);
    return t ? (int)strlen(t) : 0;
}

const struct sql_driver sql_pg_driver = {
    .backend = SQL_POSTGRES,
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .in_txn = pg_in_txn,
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .reset = pg_reset,
    .step = pg_step,
    .bind = pg_bind,
    .is_null = pg_col_is_null,
    .col_int64 = pg_col_int64,
    .col_double = pg_col_double,
    .col_text = pg_col_text,
    .col_blob = pg_col_blob,
    .col_bytes = pg_col_bytes,
};
