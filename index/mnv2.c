/* mnv2.c: loads the flat MobileNetV2 weight file (mmap, validated entry by
 * entry) and runs the forward pass: graph preprocessing, the convolution
 * chain with residual adds, global average pool. */
#include "index/mnv2.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MNV2_MAGIC "IMGSMNV2"
#define MNV2_VERSION 1
#define HEADER_SIZE 64
#define ENTRY_SIZE 128
#define NAME_SIZE 64
#define DATA_ALIGN 64

/* Entry ops and flags, as scripts/convert-model.js writes them. */
enum { E_CONV = 1, E_DWCONV = 2, E_BIAS = 3, E_SCALE = 4, E_SHIFT = 5 };
enum { F_RELU6 = 1, F_SAVE_INPUT = 2, F_ADD_SKIP = 4 };

struct entry {
    char name[NAME_SIZE];
    uint32_t op, stride, flags, ndim, dims[4];
    uint64_t offset, count;
    const float *data;
};

static int fail_msg(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (errbuf && errlen)
        vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Decodes entry i and checks that its data lies inside the file, aligned. */
static int read_entry(const uint8_t *base, size_t len, uint32_t i, struct entry *e, char *errbuf,
                      size_t errlen)
{
    const uint8_t *p = base + HEADER_SIZE + (size_t)i * ENTRY_SIZE;
    memcpy(e->name, p, NAME_SIZE);
    e->name[NAME_SIZE - 1] = '\0';
    e->op = rd32(p + 64);
    e->stride = rd32(p + 68);
    e->flags = rd32(p + 72);
    e->ndim = rd32(p + 76);
    uint64_t n = 1;
    for (int d = 0; d < 4; d++) {
        e->dims[d] = rd32(p + 80 + 4 * d);
        if (e->dims[d] == 0 || e->dims[d] > 65536)
            return fail_msg(errbuf, errlen, "entry %u (%s): bad shape", i, e->name);
        n *= e->dims[d];
    }
    e->offset = rd64(p + 96);
    e->count = rd64(p + 104);
    if (e->ndim > 4 || n != e->count)
        return fail_msg(errbuf, errlen, "entry %u (%s): shape/count mismatch", i, e->name);
    if (e->offset % DATA_ALIGN || e->offset > len || e->count > (len - e->offset) / sizeof(float))
        return fail_msg(errbuf, errlen, "entry %u (%s): data outside the file", i, e->name);
    e->data = (const float *)(const void *)(base + e->offset);
    return 0;
}

/* Geometry bookkeeping while the chain is read. */
struct walk {
    int h, w, c;
    int saved_h, saved_w, saved_c, have_saved;
};

static int add_conv(struct mnv2 *net, struct walk *wk, const struct entry *e,
                    const struct entry *bias, char *errbuf, size_t errlen)
{
    int dw = e->op == E_DWCONV;
    int k = (int)e->dims[0];
    int cin = (int)e->dims[2];
    int cout = dw ? cin : (int)e->dims[3];
    if (net->nlayers >= MNV2_MAX_LAYERS)
        return fail_msg(errbuf, errlen, "too many layers");
    if (e->ndim != 4 || e->dims[1] != e->dims[0] || k % 2 == 0 || (dw && e->dims[3] != 1))
        return fail_msg(errbuf, errlen, "%s: unsupported kernel shape", e->name);
    if (cin != wk->c)
        return fail_msg(errbuf, errlen, "%s: expects %d channels, gets %d", e->name, cin, wk->c);
    if (e->stride < 1 || e->stride > 4)
        return fail_msg(errbuf, errlen, "%s: bad stride", e->name);
    if (bias->op != E_BIAS || bias->count != (uint64_t)cout)
        return fail_msg(errbuf, errlen, "%s: missing or mis-sized bias", e->name);

    struct mnv2_layer *l = &net->layers[net->nlayers++];
    struct kern_conv *c = &l->conv;
    memset(l, 0, sizeof *l);
    l->op = dw ? MNV2_DWCONV : MNV2_CONV;
    c->in_h = wk->h;
    c->in_w = wk->w;
    c->cin = cin;
    c->cout = cout;
    c->k = k;
    c->stride = (int)e->stride;
    kern_same_pad(wk->h, k, c->stride, &c->out_h, &c->pad_top);
    kern_same_pad(wk->w, k, c->stride, &c->out_w, &c->pad_left);
    c->w = e->data;
    c->b = bias->data;
    c->relu6 = (e->flags & F_RELU6) != 0;
    if (e->flags & F_SAVE_INPUT) {
        l->save_input = 1;
        wk->saved_h = wk->h;
        wk->saved_w = wk->w;
        wk->saved_c = wk->c;
        wk->have_saved = 1;
    }
    if (e->flags & F_ADD_SKIP) {
        if (!wk->have_saved || wk->saved_h != c->out_h || wk->saved_w != c->out_w ||
            wk->saved_c != cout)
            return fail_msg(errbuf, errlen, "%s: residual add of mismatched shapes", e->name);
        l->add_skip = 1;
        wk->have_saved = 0;
    }
    wk->h = c->out_h;
    wk->w = c->out_w;
    wk->c = cout;
    size_t act = (size_t)wk->h * wk->w * wk->c;
    if (act > net->max_act)
        net->max_act = act;
    if (l->op == MNV2_CONV && kern_conv_fast_scratch(c) > net->max_col)
        net->max_col = kern_conv_fast_scratch(c);
    return 0;
}

/* Whether layers li..li+2 are expand -> depthwise -> project that the fast
 * path can run as one banded block. */
static int fusable_at(const struct mnv2 *net, int li)
{
    if (li + 2 >= net->nlayers)
        return 0;
    const struct mnv2_layer *e = &net->layers[li], *d = e + 1, *p = e + 2;
    return e->op == MNV2_CONV && d->op == MNV2_DWCONV && p->op == MNV2_CONV && !e->add_skip &&
           !d->save_input && !d->add_skip && !p->save_input &&
           kern_block_fusable(&e->conv, &d->conv, &p->conv);
}

static int parse(const uint8_t *base, size_t len, int side, struct mnv2 *net, char *errbuf,
                 size_t errlen)
{
    if (len < HEADER_SIZE || memcmp(base, MNV2_MAGIC, 8) != 0)
        return fail_msg(errbuf, errlen, "not an imgsearch MobileNetV2 weight file");
    if (rd32(base + 8) != MNV2_VERSION)
        return fail_msg(errbuf, errlen, "weight file version %u, want %d", rd32(base + 8),
                        MNV2_VERSION);
    uint32_t count = rd32(base + 12);
    if (rd64(base + 16) != len || rd32(base + 24) != HEADER_SIZE || rd32(base + 28) != ENTRY_SIZE)
        return fail_msg(errbuf, errlen, "weight file truncated or header mismatch");
    if (count == 0 || count > 4 * MNV2_MAX_LAYERS || (size_t)count * ENTRY_SIZE > len - HEADER_SIZE)
        return fail_msg(errbuf, errlen, "bad entry count %u", count);

    struct walk wk = {.h = side, .w = side, .c = 3};
    net->side = side;
    net->in_mul = 1.0f;
    net->in_sub = 0.0f;
    net->max_act = (size_t)side * side * 3;
    for (uint32_t i = 0; i < count; i++) {
        struct entry e, b;
        if (read_entry(base, len, i, &e, errbuf, errlen))
            return -1;
        switch (e.op) {
        case E_SCALE:
        case E_SHIFT:
            if (net->nlayers || e.count != 1)
                return fail_msg(errbuf, errlen, "%s: misplaced preprocessing", e.name);
            if (e.op == E_SCALE)
                net->in_mul = e.data[0];
            else
                net->in_sub = e.data[0];
            break;
        case E_CONV:
        case E_DWCONV:
            if (i + 1 >= count || read_entry(base, len, ++i, &b, errbuf, errlen))
                return fail_msg(errbuf, errlen, "%s: no bias entry", e.name);
            if (add_conv(net, &wk, &e, &b, errbuf, errlen))
                return -1;
            break;
        default:
            return fail_msg(errbuf, errlen, "%s: unexpected entry op %u", e.name, e.op);
        }
    }
    if (!net->nlayers || wk.have_saved)
        return fail_msg(errbuf, errlen, "incomplete network");
    net->out_ch = wk.c;
    for (int li = 0; li < net->nlayers; li++) {
        const struct mnv2_layer *l = &net->layers[li];
        if (!fusable_at(net, li))
            continue;
        size_t need = kern_block_fast_scratch(&l->conv, &l[1].conv, &l[2].conv);
        if (need > net->max_col)
            net->max_col = need;
    }
    return 0;
}

int mnv2_load(const char *path, int side, struct mnv2 *net, char *errbuf, size_t errlen)
{
    memset(net, 0, sizeof *net);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail_msg(errbuf, errlen, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0) {
        close(fd);
        return fail_msg(errbuf, errlen, "%s: empty or unreadable", path);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return fail_msg(errbuf, errlen, "%s: mmap: %s", path, strerror(errno));
    net->map = map;
    net->map_len = (size_t)st.st_size;
    char msg[256];
    if (parse(map, net->map_len, side, net, msg, sizeof msg) != 0) {
        fail_msg(errbuf, errlen, "%s: %s", path, msg);
        goto fail;
    }
    return 0;
fail:
    mnv2_unload(net);
    return -1;
}

static void free_int8(struct mnv2 *net)
{
    for (int li = 0; li < net->nlayers; li++) {
        kern_q8_free(&net->layers[li].q8);
        free(net->layers[li].w16);
        net->layers[li].w16 = NULL;
    }
}

int mnv2_prepare_int8(struct mnv2 *net)
{
    if (!kern_q8_supported())
        return -1;
    for (int li = 0; li < net->nlayers; li++) {
        struct mnv2_layer *l = &net->layers[li];
        if (l->op != MNV2_CONV || !kern_q8_eligible(&l->conv) || l->q8.mem)
            continue;
        if (kern_q8_pack(&l->conv, &l->q8) != 0) {
            free_int8(net);
            return -1;
        }
        /* The input is the previous layer's output: ReLU6'd unless a skip is
         * added after the clamp. */
        l->q8.nonneg = li > 0 && l[-1].conv.relu6 && !l[-1].add_skip;
    }
    /* fp16 depthwise: the layers between an expand and an int8 project. */
    for (int li = 1; kern_f16_supported() && li + 1 < net->nlayers; li++) {
        struct mnv2_layer *l = &net->layers[li];
        if (l->op != MNV2_DWCONV || l->conv.k != 3 || !l->conv.relu6 || !l[1].q8.mem || l->w16)
            continue;
        if (!(l->w16 = kern_dw16_pack(&l->conv))) {
            free_int8(net);
            return -1;
        }
    }
    return 0;
}

void mnv2_unload(struct mnv2 *net)
{
    free_int8(net);
    if (net->map)
        munmap(net->map, net->map_len);
    memset(net, 0, sizeof *net);
}

size_t mnv2_scratch_floats(const struct mnv2 *net)
{
    return 3 * net->max_act + net->max_col;
}

/* The two whole-tensor loops around the layers, vectorised (at -O2, GCC 12
 * leaves loops of unknown trip count scalar): ~0.1 ms, ~2 % of the int8
 * path. Same operations in the same order, so the same results. */
__attribute__((optimize("O3"))) static void preprocess(const float *in, size_t n, float mul,
                                                       float sub, float *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] * mul - sub;
}

__attribute__((optimize("O3"))) static void average_pool(const float *x, int npix, int ch,
                                                         float *gap)
{
    for (int c = 0; c < ch; c++)
        gap[c] = 0.0f;
    for (int p = 0; p < npix; p++)
        for (int c = 0; c < ch; c++)
            gap[c] += x[(size_t)p * ch + c];
    for (int c = 0; c < ch; c++)
        gap[c] /= (float)npix;
}

void mnv2_forward(const struct mnv2 *net, const float *input, enum mnv2_path path, float *scratch,
                  float *gap)
{
    int fast = path != MNV2_REF;
    int int8 = path == MNV2_INT8;
    float *buf[3] = {scratch, scratch + net->max_act, scratch + 2 * net->max_act};
    float *col = scratch + 3 * net->max_act;
    preprocess(input, (size_t)net->side * net->side * 3, net->in_mul, net->in_sub, buf[0]);

    /* Three buffers suffice: the current input, the saved skip, the output. */
    int cur = 0, skip = -1;
    for (int li = 0; li < net->nlayers; li++) {
        const struct mnv2_layer *l = &net->layers[li];
        if (l->save_input)
            skip = cur;
        int out = 0;
        while (out == cur || out == skip)
            out++;
        struct kern_conv c = l->conv;
        c.skip = l->add_skip ? buf[skip] : NULL;
        c.portable = path == MNV2_FAST_BLAS;
        c.q8 = int8 && l->q8.mem ? &l->q8 : NULL;
        if (fast && fusable_at(net, li)) {
            struct kern_conv p = l[2].conv;
            p.skip = l[2].add_skip ? buf[skip] : NULL;
            p.portable = c.portable;
            p.q8 = int8 && l[2].q8.mem ? &l[2].q8 : NULL;
            struct kern_conv d = l[1].conv;
            d.portable = c.portable;
            d.w16 = int8 ? l[1].w16 : NULL;
            kern_block_fast(&c, &d, &p, buf[cur], buf[out], col);
            if (l[2].add_skip)
                skip = -1;
            cur = out;
            li += 2;
            continue;
        }
        if (l->op == MNV2_DWCONV) {
            if (fast)
                kern_dw_fast(&c, buf[cur], buf[out]);
            else
                kern_dw_ref(&c, buf[cur], buf[out]);
        } else {
            if (fast)
                kern_conv_fast(&c, buf[cur], buf[out], col);
            else
                kern_conv_ref(&c, buf[cur], buf[out]);
        }
        if (l->add_skip)
            skip = -1;
        cur = out;
    }

    const struct kern_conv *last = &net->layers[net->nlayers - 1].conv;
    average_pool(buf[cur], last->out_h * last->out_w, net->out_ch, gap);
}
