#!/usr/bin/env node
/*
 * convert-model.js: turns the TF.js graph model shipped in nsfwjs
 * (dist/models/mobilenet_v2_mid: UMD/base64 .min.js wrappers) into the flat
 * file the C extractor mmaps (format in docs/extractor.md).
 *
 * usage: node scripts/convert-model.js MODEL_DIR OUT_FILE
 *
 * Only the MobileNetV2 backbone up to Conv_1 (+bias+ReLU6) is kept; the NSFW
 * head is dropped. The op chain, strides, activations and residual adds are
 * read from modelTopology.node, not assumed. No npm dependencies.
 */
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');

const MAGIC = 'IMGSMNV2';
const VERSION = 1;
const HEADER_SIZE = 64;
const ENTRY_SIZE = 128;
const NAME_SIZE = 64;
const ALIGN = 64;

const OP_CONST = 0;
const OP_CONV = 1; /* dense conv, HWIO weights */
const OP_DWCONV = 2; /* depthwise conv, HWC weights (TF [kh,kw,C,1]) */
const OP_BIAS = 3;
const OP_SCALE = 4; /* preprocessing x*mul */
const OP_SHIFT = 5; /* preprocessing x-sub */

const F_RELU6 = 1;
const F_SAVE_INPUT = 2; /* this op's input is kept for a later residual add */
const F_ADD_SKIP = 4; /* add the kept tensor to this op's output */

function die(msg) {
    process.stderr.write('convert-model: ' + msg + '\n');
    process.exit(1);
}

/* Evaluates one UMD wrapper in an empty context and returns its export. The
 * package's integrity was checked by fetch-model.sh before we get here. */
function loadUmd(file) {
    const src = fs.readFileSync(file, 'utf8');
    const module = { exports: {} };
    const ctx = vm.createContext({ module, exports: module.exports });
    vm.runInContext(src, ctx, { filename: file, timeout: 10000 });
    return module.exports;
}

function decodeAttrString(a) {
    return a && a.s ? Buffer.from(a.s, 'base64').toString('latin1') : '';
}

function attrList(a, key) {
    return a && a.list && a.list[key] ? a.list[key] : [];
}

/* TF.js dequantisation: value = q * scale + min, rounded to float32 (as
 * tfjs-core's io.decodeWeights does, so we match the reference bit for bit). */
function readWeights(dir, manifest) {
    const tensors = new Map();
    for (const group of manifest) {
        const parts = group.paths.map((p) => {
            const b64 = loadUmd(path.join(dir, p + '.min.js'));
            if (typeof b64 !== 'string') die(p + ': wrapper did not yield a base64 string');
            return Buffer.from(b64, 'base64');
        });
        const buf = Buffer.concat(parts);
        let off = 0;
        for (const w of group.weights) {
            const n = w.shape.reduce((a, b) => a * b, 1);
            const q = w.quantization;
            const vals = new Float32Array(n);
            if (q && q.dtype === 'uint8') {
                for (let i = 0; i < n; i++) vals[i] = buf[off + i] * q.scale + q.min;
                off += n;
            } else if (q && q.dtype === 'uint16') {
                for (let i = 0; i < n; i++) vals[i] = buf.readUInt16LE(off + 2 * i) * q.scale + q.min;
                off += 2 * n;
            } else if (!q && w.dtype === 'float32') {
                for (let i = 0; i < n; i++) vals[i] = buf.readFloatLE(off + 4 * i);
                off += 4 * n;
            } else {
                die(w.name + ': unsupported weight encoding ' + JSON.stringify(q || w.dtype));
            }
            tensors.set(w.name, { shape: w.shape, data: vals });
        }
        if (off !== buf.length) die('manifest covers ' + off + ' bytes, shards hold ' + buf.length);
    }
    return tensors;
}

/* Walks the graph from the input to the Conv_1 Relu6 node and emits the
 * entries (op records carrying their tensors) in execution order. */
function buildEntries(topo, tensors) {
    const nodes = new Map();
    for (const n of topo.node) nodes.set(n.name, n);
    const consumers = new Map();
    for (const n of topo.node)
        for (const i of n.input || []) {
            const k = i.replace(/^\^/, '').replace(/:\d+$/, '');
            if (!consumers.has(k)) consumers.set(k, []);
            consumers.get(k).push(n);
        }
    const short = (name) => name.replace(/^.*\/predict\//, '');
    const weight = (name) => {
        const t = tensors.get(name);
        if (!t) die('no weights for ' + name);
        return t;
    };
    const entries = [];
    const push = (op, stride, flags, name, t) =>
        entries.push({ op, stride, flags, name: short(name), shape: t.shape, data: t.data });

    const input = topo.node.find((n) => n.op === 'Placeholder');
    if (!input) die('no Placeholder');
    let cur = input.name;
    let pendingSave = null; /* tensor name a later AddV2 may read */
    for (;;) {
        const next = (consumers.get(cur) || []).filter((n) => n.op !== 'Const');
        if (next.length === 0) die('graph ends at ' + cur + ' before Conv_1');
        /* A block input feeds both the expand conv and the AddV2; follow the conv. */
        const conv = next.find((n) => n.op !== 'AddV2');
        const add = next.find((n) => n.op === 'AddV2');
        if (!conv) die('no op after ' + cur);
        const n = conv;
        const ins = n.input.map((s) => s.replace(/:\d+$/, ''));
        if (n.op === 'Mul' || n.op === 'Sub') {
            const cname = ins.find((s) => s !== cur);
            push(n.op === 'Mul' ? OP_SCALE : OP_SHIFT, 0, 0, cname, weight(cname));
            if (n.op === 'Sub' && ins[0] !== cur) die('Sub with the input second');
        } else if (n.op === '_FusedConv2D' || n.op === 'FusedDepthwiseConv2dNative') {
            if (ins[0] !== cur) die(n.name + ': unexpected input order');
            const strides = attrList(n.attr.strides, 'i').map(Number);
            const dil = attrList(n.attr.dilations, 'i').map(Number);
            const fused = attrList(n.attr.fused_ops, 's').map((s) =>
                Buffer.from(s, 'base64').toString('latin1'));
            if (decodeAttrString(n.attr.padding) !== 'SAME') die(n.name + ': padding not SAME');
            if (decodeAttrString(n.attr.data_format) !== 'NHWC') die(n.name + ': not NHWC');
            if (strides[1] !== strides[2] || dil.some((d) => d !== 1)) die(n.name + ': odd strides');
            if (fused[0] !== 'BiasAdd' || fused.length > 2 || (fused[1] && fused[1] !== 'Relu6'))
                die(n.name + ': fused ops ' + fused.join(','));
            let flags = fused[1] === 'Relu6' ? F_RELU6 : 0;
            if (add) {
                /* This op's input is a residual source: AddV2(cur, ...) comes later. */
                flags |= F_SAVE_INPUT;
                pendingSave = add.name;
            }
            const w = weight(ins[1]);
            const b = weight(ins[2]);
            const isDw = n.op === 'FusedDepthwiseConv2dNative';
            if (isDw && w.shape[3] !== 1) die(n.name + ': depth multiplier != 1');
            if (b.shape[0] !== (isDw ? w.shape[2] : w.shape[3])) die(n.name + ': bias shape');
            push(isDw ? OP_DWCONV : OP_CONV, strides[1], flags, ins[1], w);
            push(OP_BIAS, 0, 0, ins[2], b);
            /* Does an AddV2 consume this op's output together with the saved tensor? */
            const after = (consumers.get(n.name) || []).filter((c) => c.op !== 'Const');
            if (after.length === 1 && after[0].op === 'AddV2') {
                if (after[0].name !== pendingSave) die(after[0].name + ': unmatched residual add');
                entries[entries.length - 2].flags |= F_ADD_SKIP;
                pendingSave = null;
                cur = after[0].name;
            } else {
                cur = n.name;
            }
            if (/\/Conv_1\/Relu6$/.test(n.name)) break;
        } else {
            die('unsupported op ' + n.op + ' at ' + n.name);
        }
        if (n.op === 'Mul' || n.op === 'Sub') cur = n.name;
    }
    return entries;
}

function writeFile(out, entries) {
    const tableEnd = HEADER_SIZE + ENTRY_SIZE * entries.length;
    let off = Math.ceil(tableEnd / ALIGN) * ALIGN;
    const offsets = entries.map((e) => {
        const o = off;
        off += Math.ceil((e.data.length * 4) / ALIGN) * ALIGN;
        return o;
    });
    const buf = Buffer.alloc(off);
    buf.write(MAGIC, 0, 'latin1');
    buf.writeUInt32LE(VERSION, 8);
    buf.writeUInt32LE(entries.length, 12);
    buf.writeBigUInt64LE(BigInt(off), 16); /* file size */
    buf.writeUInt32LE(HEADER_SIZE, 24);
    buf.writeUInt32LE(ENTRY_SIZE, 28);
    entries.forEach((e, i) => {
        const p = HEADER_SIZE + ENTRY_SIZE * i;
        if (Buffer.byteLength(e.name) >= NAME_SIZE) die('name too long: ' + e.name);
        buf.write(e.name, p, 'latin1');
        buf.writeUInt32LE(e.op, p + 64);
        buf.writeUInt32LE(e.stride, p + 68);
        buf.writeUInt32LE(e.flags, p + 72);
        buf.writeUInt32LE(e.shape.length, p + 76);
        for (let d = 0; d < 4; d++) buf.writeUInt32LE(d < e.shape.length ? e.shape[d] : 1, p + 80 + 4 * d);
        buf.writeBigUInt64LE(BigInt(offsets[i]), p + 96);
        buf.writeBigUInt64LE(BigInt(e.data.length), p + 104);
        Buffer.from(e.data.buffer, e.data.byteOffset, e.data.length * 4).copy(buf, offsets[i]);
    });
    const tmp = out + '.tmp' + process.pid;
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(tmp, buf);
    fs.renameSync(tmp, out);
    return off;
}

function main() {
    const [dir, out] = process.argv.slice(2);
    if (!dir || !out) die('usage: convert-model.js MODEL_DIR OUT_FILE');
    const model = loadUmd(path.join(dir, 'model.min.js'));
    if (!model || !model.modelTopology || !model.weightsManifest) die('not a TF.js graph model');
    const tensors = readWeights(dir, model.weightsManifest);
    const entries = buildEntries(model.modelTopology, tensors);
    const size = writeFile(out, entries);
    const params = entries.reduce((a, e) => a + e.data.length, 0);
    console.log(`wrote ${out}: ${entries.length} entries, ${params} floats, ${size} bytes`);
}

main();
