#!/usr/bin/env node
/*
 * reference.js: runs the ORIGINAL TF.js graph model (nsfwjs mobilenet_v2_mid)
 * with tfjs-core + tfjs-converter + tfjs-backend-cpu up to the Conv_1 Relu6
 * node, then global-average-pools and L2-normalises, to give the C extractor
 * golden vectors. Inputs are raw float32 224x224x3 HWC files in [0,1], so no
 * image decoding happens here.
 *
 * usage: node reference.js NODE_MODULES_DIR MODEL_DIR OUT_DIR input_0.f32 ...
 *   writes OUT_DIR/embed_<i>.f32 (1792 float32) for each input; with env
 *   GOLDEN_DUMP_NODE=<node name suffix> also writes that node's raw output to
 *   OUT_DIR/node_<i>.f32 (for per-layer debugging).
 */
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');

const CONV1 = 'MobilenetV2/Conv_1/Relu6';
const SIDE = 224;

function loadUmd(file) {
    const module = { exports: {} };
    const ctx = vm.createContext({ module, exports: module.exports });
    vm.runInContext(fs.readFileSync(file, 'utf8'), ctx, { filename: file, timeout: 10000 });
    return module.exports;
}

function main() {
    const [modules, modelDir, outDir, ...inputs] = process.argv.slice(2);
    if (!inputs.length) {
        console.error('usage: reference.js NODE_MODULES_DIR MODEL_DIR OUT_DIR INPUT.f32...');
        process.exit(2);
    }
    const tf = require(path.join(modules, '@tensorflow/tfjs-core'));
    require(path.join(modules, '@tensorflow/tfjs-backend-cpu'));
    const tfconv = require(path.join(modules, '@tensorflow/tfjs-converter'));
    tf.setBackend('cpu');

    const json = loadUmd(path.join(modelDir, 'model.min.js'));
    const specs = [];
    const parts = [];
    for (const g of json.weightsManifest) {
        specs.push(...g.weights);
        for (const p of g.paths) parts.push(Buffer.from(loadUmd(path.join(modelDir, p + '.min.js')), 'base64'));
    }
    const all = Buffer.concat(parts);
    const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.length);
    const model = tfconv.loadGraphModelSync(
        tf.io.fromMemorySync({ modelTopology: json.modelTopology, weightSpecs: specs, weightData }));

    const names = json.modelTopology.node.map((n) => n.name);
    const conv1 = names.find((n) => n.endsWith(CONV1));
    if (!conv1) throw new Error('no ' + CONV1 + ' node');
    const dumpSuffix = process.env.GOLDEN_DUMP_NODE;
    const dumpNode = dumpSuffix ? names.find((n) => n.endsWith(dumpSuffix)) : null;
    if (dumpSuffix && !dumpNode) throw new Error('no node ending in ' + dumpSuffix);

    fs.mkdirSync(outDir, { recursive: true });
    inputs.forEach((file, i) => {
        const raw = fs.readFileSync(file);
        const x = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
        if (x.length !== SIDE * SIDE * 3) throw new Error(file + ': wrong size');
        const input = tf.tensor4d(x, [1, SIDE, SIDE, 3]);
        const wanted = dumpNode ? [conv1, dumpNode] : [conv1];
        const outs = model.execute({ input }, wanted);
        const feat = Array.isArray(outs) ? outs[0] : outs;
        const pooled = tf.mean(feat, [1, 2]);
        const unit = tf.div(pooled, tf.norm(pooled));
        const v = unit.dataSync();
        fs.writeFileSync(path.join(outDir, `embed_${i}.f32`), Buffer.from(v.buffer, v.byteOffset, v.byteLength));
        if (dumpNode) {
            const d = outs[1].dataSync();
            fs.writeFileSync(path.join(outDir, `node_${i}.f32`), Buffer.from(d.buffer, d.byteOffset, d.byteLength));
            console.log(`node ${dumpNode} shape ${outs[1].shape}`);
        }
        tf.dispose([input, pooled, unit].concat(outs));
        console.log(`embed_${i}: first ${Array.from(v.slice(0, 4)).map((f) => f.toFixed(5)).join(' ')}`);
    });
}

main();
