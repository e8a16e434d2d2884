// sdk_check.js: drives imgsearchd with the OFFICIAL Huawei Cloud Node.js SDK
// core (@huaweicloud/huaweicloud-sdk-core: its HcClient transport and
// SDK-HMAC-SHA256 signer), through a client shaped like the generated
// ImageSearch service clients (operation -> sendRequest options). Prints one
// JSON object with every answer, into OUT_FILE (the SDK logs to stdout), for
// tests/e2e/test_sdk.py to check.
//   node sdk_check.js SDK_DIR ENDPOINT AK SK PROJECT SERVICE V1NAME IMAGE_B64_FILE OUT_FILE
'use strict';
const fs = require('fs');
const [sdkDir, endpoint, ak, sk, project, service, v1name, imageFile, outFile] =
    process.argv.slice(2);
// Generated service clients import these by subpath, as here.
const pkg = sdkDir + '/node_modules/@huaweicloud/huaweicloud-sdk-core';
const core = {
    ClientBuilder: require(pkg + '/ClientBuilder').ClientBuilder,
    BasicCredentials: require(pkg + '/auth/BasicCredentials').BasicCredentials,
};

class ImageSearchClient {
    constructor(hcClient) { this.hcClient = hcClient; }
    static newBuilder() {
        return new core.ClientBuilder((c) => new ImageSearchClient(c), 'BasicCredentials');
    }
    // The generated clients pass exactly these option fields.
    call(method, url, pathParams, data, contentType) {
        return this.hcClient.sendRequest({
            method, url, contentType: contentType || 'application/json',
            queryParams: {}, pathParams, headers: {}, data,
        });
    }
    v2(op, body) {
        return this.call('POST', '/v2/{project_id}/mms/{service_name}/' + op,
                         { service_name: service }, body);
    }
    v1(method, suffix, body) {
        return this.call(method, '/v1/{project_id}' + suffix, {}, body,
                         body ? 'application/json;charset=UTF-8' : 'application/json');
    }
}

function client(secret) {
    const cred = new core.BasicCredentials().withAk(ak).withSk(secret).withProjectId(project);
    return ImageSearchClient.newBuilder().withCredential(cred).withEndpoint(endpoint).build();
}

// Responses keep their JSON fields; SDK errors are reported as the SDK saw them.
async function attempt(p) {
    try {
        const r = await p;
        return { ok: true, status: r.httpStatusCode, body: JSON.parse(JSON.stringify(r)) };
    } catch (e) {
        return { ok: false, status: e.httpStatusCode, errorCode: e.errorCode,
                 errorMsg: e.errorMsg, requestId: e.requestId, type: e.constructor.name };
    }
}

(async () => {
    const img = fs.readFileSync(imageFile, 'utf8').trim();
    const c = client(sk);
    const out = {};
    out.add = await attempt(c.v2('data/add', {
        item_id: 'sdk-1', image_base64: img, desc: 'via the official SDK core',
        custom_tags: { brand: 'HUABAN' }, custom_num_tags: { year: 2023 }, force: false }));
    out.addAgain = await attempt(c.v2('data/add', { item_id: 'sdk-1', image_base64: img }));
    out.search = await attempt(c.v2('search', {
        search_type: 'IMAGE', image_base64: img, limit: 5, min_score: 0.5,
        custom_tags: { brand: ['HUAWEI', 'HUABAN'] },
        custom_num_tags: { year: { from: 2020, to: 2024 } } }));
    out.check = await attempt(c.v2('data/check', { item_id: 'sdk-1' }));
    out.update = await attempt(c.v2('data/update', { item_id: 'sdk-1', desc: 'updated' }));
    out.checkAfter = await attempt(c.v2('data/check', { item_id: 'sdk-1' }));
    out.deleteCond = await attempt(c.v2('data/delete', { custom_tags: { brand: ['NONE'] } }));
    out.delete = await attempt(c.v2('data/delete', { item_id: 'sdk-1' }));
    out.badParam = await attempt(c.v2('search', { search_type: 'IMAGE', limit: 0,
                                                    image_base64: img }));
    out.noService = await attempt(
        c.call('POST', '/v2/{project_id}/mms/{service_name}/search',
               { service_name: 'no-such-service' }, { search_type: 'IMAGE', image_base64: img }));
    out.wrongSecret = await attempt(client('not-the-secret').v2('data/check', { item_id: 'x' }));
    // v1 (legacy) flow, as RunCreateInstance ... RunDeletePicture send it.
    out.v1create = await attempt(c.v1('POST', '/service',
                                      { name: v1name, model: 'common-search', tags: ['color'] }));
    out.v1query = await attempt(c.v1('GET', '/service/' + v1name));
    out.v1add = await attempt(c.v1('POST', '/' + v1name + '/image',
                                   { path: 'obs://bucket/a.jpg', file: img, tags: { color: 'red' } }));
    out.v1check = await attempt(c.v1('POST', '/' + v1name + '/image/check',
                                     { path: 'obs://bucket/a.jpg' }));
    out.v1search = await attempt(c.v1('POST', '/' + v1name + '/image/search',
                                      { file: img, limit: 3 }));
    out.v1modify = await attempt(c.v1('PUT', '/' + v1name + '/image',
                                      { path: 'obs://bucket/a.jpg', tags: { color: 'blue' } }));
    out.v1delete = await attempt(c.v1('DELETE', '/' + v1name + '/image',
                                      { path: 'obs://bucket/a.jpg' }));
    out.v1deleteInstance = await attempt(c.v1('DELETE', '/service/' + v1name));
    fs.writeFileSync(outFile, JSON.stringify(out) + '\n');
})().catch((e) => { console.error(e); process.exit(1); });
