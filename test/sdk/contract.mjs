// Contract test: drives Klaviyo's official Node SDK (npm klaviyo-api,
// pinned in package.json) against a running webhookd, with no change to the
// SDK beyond pointing WebhooksApi.basePath at the server, as
// klaviyo-api.md §9.1 describes.
//
//   BASE_URL=http://127.0.0.1:8080 API_KEY=pk_... node contract.mjs
//
// It prints one line per step and exits non-zero on the first failure,
// printing the HTTP status and response body of a failed SDK call. It never
// prints the API key or the webhook secret: axios errors carry both (in
// config.headers and config.data), so only the response is printed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import klaviyo from 'klaviyo-api';

const { ApiKeySession, WebhooksApi, FlowsApi } = klaviyo;

const baseURL = process.env.BASE_URL;
const apiKey = process.env.API_KEY;
if (!baseURL || !apiKey) {
  console.error('contract: BASE_URL and API_KEY must be set');
  process.exit(2);
}

const SENT_SMS = 'event:klaviyo.sent_sms';
const CLICKED_SMS = 'event:klaviyo.clicked_sms';
const OPENED_EMAIL = 'event:klaviyo.opened_email';

// The default session, as a user would build it. Its retries (429, 503,
// 504, 524) never fire here: webhookd does not throttle or shed this load.
const api = new WebhooksApi(new ApiKeySession(apiKey));
api.basePath = baseURL.replace(/\/$/, '');

let current = '';

// step runs one named step and prints its outcome.
async function step(name, fn) {
  current = name;
  await fn();
  console.log(`ok   ${name}`);
}

// rejection awaits p, which must reject with an HTTP error response, and
// returns that response.
async function rejection(p) {
  let res;
  try {
    res = await p;
  } catch (err) {
    if (!err?.response) throw err;
    return err.response;
  }
  assert.fail(`call succeeded with HTTP ${res.response.status}, want an error`);
}

// assertErrorDocument checks a JSON:API error document as Klaviyo's OAS
// (ClientError) and the Python SDK's GetAccounts4XXResponse require it:
// errors[] with id, code, title and detail as strings.
function assertErrorDocument(res, status, code) {
  assert.equal(res.status, status, 'HTTP status');
  assert.match(String(res.headers['content-type']), /^application\/vnd\.api\+json/, 'error Content-Type');
  assert.ok(Array.isArray(res.data?.errors) && res.data.errors.length > 0, 'errors[] present');
  const e = res.data.errors[0];
  for (const k of ['id', 'code', 'title', 'detail']) {
    assert.equal(typeof e[k], 'string', `errors[0].${k} is a string`);
  }
  assert.equal(e.code, code, 'errors[0].code');
  return e;
}

// topicIds returns the sorted topic ids of a webhook resource as the SDK
// deserialized it (relationships.webhook-topics -> relationships.webhookTopics).
function topicIds(resource) {
  const data = resource.relationships?.webhookTopics?.data;
  assert.ok(Array.isArray(data), 'relationships.webhookTopics.data is an array');
  for (const t of data) assert.equal(t.type, 'webhook-topic', 'relationship type');
  return data.map((t) => t.id).sort();
}

function assertWebhook(resource, id) {
  assert.equal(resource.type, 'webhook');
  assert.equal(resource.id, id);
  assert.equal(typeof resource.links?.self, 'string', 'links.self');
  assert.equal(typeof resource.attributes.enabled, 'boolean', 'attributes.enabled is a boolean');
}

// assertNoSecret checks the raw wire body, before the SDK's deserializer
// could drop an unknown field, for the write-only secret_key.
function assertNoSecret(response, secret) {
  const raw = JSON.stringify(response.data);
  assert.ok(!raw.includes('secret_key'), 'response carries no secret_key');
  assert.ok(!raw.includes(secret), 'response does not echo the secret');
}

async function main() {
  const secret = randomBytes(24).toString('hex');
  const name = `sdk-contract-${randomBytes(4).toString('hex')}`;
  const endpoint = 'https://hooks.example.com/klaviyo/sdk-contract';
  let id;

  await step('createWebhook', async () => {
    const { response, body } = await api.createWebhook({
      data: {
        type: 'webhook',
        attributes: {
          name,
          description: 'created by test/sdk/contract.mjs',
          endpointUrl: endpoint,
          secretKey: secret,
        },
        relationships: {
          webhookTopics: { data: [{ type: 'webhook-topic', id: SENT_SMS }] },
        },
      },
    });
    assert.equal(response.status, 201);
    assert.match(String(response.headers['content-type']), /^application\/vnd\.api\+json/);
    id = body.data.id;
    assert.ok(typeof id === 'string' && id !== '', 'data.id');
    assertWebhook(body.data, id);
    assert.equal(body.data.attributes.name, name);
    assert.equal(body.data.attributes.description, 'created by test/sdk/contract.mjs');
    assert.equal(body.data.attributes.enabled, true);
    assert.ok(endpoint.startsWith(body.data.attributes.endpointUrl),
      `endpoint_url ${body.data.attributes.endpointUrl} is a prefix of ${endpoint}`);
    assert.ok(body.data.attributes.createdAt instanceof Date && !isNaN(body.data.attributes.createdAt),
      'created_at parses as a date');
    assert.deepEqual(topicIds(body.data), [SENT_SMS]);
    assertNoSecret(response, secret);
  });

  await step('getWebhooks include=webhook-topics', async () => {
    const { response, body } = await api.getWebhooks({ include: ['webhook-topics'] });
    assert.equal(response.status, 200);
    assert.equal(typeof body.links?.self, 'string', 'links.self');
    const wh = body.data.find((w) => w.id === id);
    assert.ok(wh, `created webhook ${id} is listed`);
    assertWebhook(wh, id);
    assert.equal(wh.attributes.name, name);
    assert.deepEqual(topicIds(wh), [SENT_SMS]);
    assert.ok(Array.isArray(body.included), 'included[] present');
    const topic = body.included.find((t) => t.id === SENT_SMS);
    assert.ok(topic, `included has ${SENT_SMS}`);
    assert.equal(topic.type, 'webhook-topic');
    assert.equal(typeof topic.links?.self, 'string', 'included links.self');
    assertNoSecret(response, secret);
  });

  await step('getWebhook', async () => {
    const { response, body } = await api.getWebhook(id);
    assert.equal(response.status, 200);
    assertWebhook(body.data, id);
    assert.equal(body.data.attributes.name, name);
    assert.equal(body.data.attributes.enabled, true);
    assertNoSecret(response, secret);
  });

  const renamed = `${name}-renamed`;
  await step('updateWebhook rename', async () => {
    const { response, body } = await api.updateWebhook(id, {
      data: { type: 'webhook', id, attributes: { name: renamed } },
    });
    assert.equal(response.status, 200);
    assertWebhook(body.data, id);
    assert.equal(body.data.attributes.name, renamed);
    assert.equal(body.data.attributes.description, 'created by test/sdk/contract.mjs', 'description kept');
    assert.deepEqual(topicIds(body.data), [SENT_SMS], 'topics kept');
    assertNoSecret(response, secret);
  });

  await step('updateWebhook topics', async () => {
    const { response, body } = await api.updateWebhook(id, {
      data: {
        type: 'webhook',
        id,
        attributes: {},
        relationships: {
          webhookTopics: {
            data: [
              { type: 'webhook-topic', id: CLICKED_SMS },
              { type: 'webhook-topic', id: OPENED_EMAIL },
            ],
          },
        },
      },
    });
    assert.equal(response.status, 200);
    assert.deepEqual(topicIds(body.data), [CLICKED_SMS, OPENED_EMAIL].sort());
    assert.equal(body.data.attributes.name, renamed, 'name kept');
    const got = await api.getWebhook(id, { include: ['webhook-topics'] });
    assert.deepEqual(topicIds(got.body.data), [CLICKED_SMS, OPENED_EMAIL].sort(), 'topics on a later GET');
    assert.deepEqual(got.body.included.map((t) => t.id).sort(), [CLICKED_SMS, OPENED_EMAIL].sort(),
      'included on a later GET');
  });

  await step('updateWebhook disable', async () => {
    const { response, body } = await api.updateWebhook(id, {
      data: { type: 'webhook', id, attributes: { enabled: false } },
    });
    assert.equal(response.status, 200);
    assert.equal(body.data.attributes.enabled, false);
    const got = await api.getWebhook(id);
    assert.equal(got.body.data.attributes.enabled, false, 'enabled on a later GET');
  });

  await step('updateWebhook re-enable', async () => {
    const { response, body } = await api.updateWebhook(id, {
      data: { type: 'webhook', id, attributes: { enabled: true } },
    });
    assert.equal(response.status, 200);
    assert.equal(body.data.attributes.enabled, true);
    assert.equal(body.data.attributes.name, renamed, 'name kept');
    assert.deepEqual(topicIds(body.data), [CLICKED_SMS, OPENED_EMAIL].sort(), 'topics kept');
    const got = await api.getWebhook(id);
    assert.equal(got.body.data.attributes.enabled, true, 'enabled on a later GET');
  });

  await step('getWebhookTopics', async () => {
    const { response, body } = await api.getWebhookTopics();
    assert.equal(response.status, 200);
    assert.ok(body.data.length >= 23, `${body.data.length} topics, want at least 23`);
    for (const t of body.data) {
      assert.equal(t.type, 'webhook-topic');
      assert.equal(typeof t.links?.self, 'string', `${t.id} links.self`);
    }
    assert.ok(body.data.some((t) => t.id === SENT_SMS), `topics include ${SENT_SMS}`);
  });

  await step('getWebhookTopic event:klaviyo.sent_sms', async () => {
    const { response, body } = await api.getWebhookTopic(SENT_SMS);
    assert.equal(response.status, 200);
    // The SDK percent-encodes the path parameter; the server must decode it.
    assert.match(response.request.path, /\/api\/webhook-topics\/event%3Aklaviyo\.sent_sms$/,
      'request path is percent-encoded');
    assert.equal(body.data.type, 'webhook-topic');
    assert.equal(body.data.id, SENT_SMS);
    assert.equal(typeof body.data.links?.self, 'string', 'links.self');
  });

  await step('createWebhook non-https endpoint -> 400', async () => {
    const res = await rejection(api.createWebhook({
      data: {
        type: 'webhook',
        attributes: {
          name: `${name}-bad`,
          endpointUrl: 'ftp://hooks.example.com/klaviyo',
          secretKey: secret,
        },
        relationships: {
          webhookTopics: { data: [{ type: 'webhook-topic', id: SENT_SMS }] },
        },
      },
    }));
    const e = assertErrorDocument(res, 400, 'invalid');
    assert.equal(e.source?.pointer, '/data/attributes/endpoint_url', 'errors[0].source.pointer');
  });

  await step('deleteWebhook', async () => {
    const { response } = await api.deleteWebhook(id);
    assert.equal(response.status, 204);
    assert.ok(response.data === '' || response.data === undefined, 'empty 204 body');
  });

  await step('getWebhook after delete -> 404', async () => {
    const res = await rejection(api.getWebhook(id));
    assertErrorDocument(res, 404, 'not_found');
  });

  await step('getWebhooks after delete', async () => {
    const { body } = await api.getWebhooks();
    assert.ok(!body.data.some((w) => w.id === id), 'deleted webhook is not listed');
  });
}

// flowsMain drives the Flows API subset webhookd serves (flow webhooks):
// create with a definition, list, get with the definition, update an
// action, switch the flow live, list its actions, delete an action,
// delete, and refused definitions. Header values come back masked.
async function flowsMain() {
  const flows = new FlowsApi(new ApiKeySession(apiKey));
  flows.basePath = api.basePath;
  const token = randomBytes(12).toString('hex');
  const body = '{"email": "{{ person.email }}", "total": {{ event.value|default:0 }}}';
  let flowId;
  let actionIds;

  await step('createFlow', async () => {
    const { response, body: doc } = await flows.createFlow({
      data: {
        type: 'flow',
        attributes: {
          name: 'sdk-contract flow',
          definition: {
            triggers: [{ type: 'metric', id: 'PlacedOrder1' }],
            profileFilter: null,
            actions: [
              { temporaryId: 'wh-1', type: 'send-webhook', links: { next: 'wh-2' },
                data: { status: 'draft', message: { name: 'ERP', url: 'https://erp.example.net/hooks/order',
                  headers: { 'X-Shop-Token': token }, body } } },
              { temporaryId: 'wh-2', type: 'send-webhook', links: { next: null },
                data: { status: 'draft', message: { name: 'CRM', url: 'https://crm.example.net/in', headers: {}, body: '{}' } } },
            ],
            entryActionId: 'wh-1',
          },
        },
      },
    }, { additionalFieldsFlow: ['definition'] });
    assert.equal(response.status, 201);
    assert.ok(!JSON.stringify(response.data).includes(token), 'header value masked');
    flowId = doc.data.id;
    assert.equal(doc.data.type, 'flow');
    assert.equal(doc.data.attributes.status, 'draft');
    assert.equal(doc.data.attributes.triggerType, 'Metric');
    assert.ok(doc.data.attributes.created instanceof Date, 'created is a date');
    const def = doc.data.attributes.definition;
    assert.equal(def.actions.length, 2);
    actionIds = def.actions.map((a) => a.id);
    assert.equal(def.entryActionId, actionIds[0], 'entry_action_id resolved');
    assert.equal(def.actions[0].links.next, actionIds[1], 'links.next resolved');
    assert.equal(def.actions[0].data.message.body, body);
    assert.equal(def.triggers[0].id, 'PlacedOrder1');
  });

  await step('getFlows', async () => {
    const { body: doc } = await flows.getFlows();
    const f = doc.data.find((x) => x.id === flowId);
    assert.ok(f, 'created flow is listed');
    assert.equal(f.attributes.definition, undefined, 'lists carry no definition');
  });

  await step('getFlow additional-fields[flow]=definition', async () => {
    const { body: doc } = await flows.getFlow(flowId, { additionalFieldsFlow: ['definition'] });
    assert.equal(doc.data.attributes.definition.actions[1].id, actionIds[1]);
    assert.deepEqual(doc.data.relationships.flowActions.data.map((r) => r.id), actionIds);
  });

  await step('updateFlowAction', async () => {
    const { response, body: doc } = await flows.updateFlowAction(actionIds[1], {
      data: { type: 'flow-action', id: actionIds[1], attributes: { definition: {
        id: actionIds[1], type: 'send-webhook', links: { next: null },
        data: { status: 'manual', message: { name: 'CRM v2', url: 'https://crm.example.net/v2', headers: { 'X-Crm': 'crm-secret-value' }, body: '{"v": 2}' } },
      } } },
    });
    assert.equal(response.status, 200);
    assert.equal(doc.data.attributes.definition.data.message.name, 'CRM v2');
    assert.equal(doc.data.attributes.definition.data.status, 'manual');
    assert.ok(!JSON.stringify(response.data).includes('crm-secret-value'), 'header value masked');
  });

  await step('updateFlow status live', async () => {
    const { response, body: doc } = await flows.updateFlow(flowId, { data: { type: 'flow', id: flowId, attributes: { status: 'live' } } });
    assert.equal(response.status, 200);
    assert.equal(doc.data.attributes.status, 'live');
  });

  await step('getActionsForFlow', async () => {
    const { body: doc } = await flows.getActionsForFlow(flowId);
    assert.deepEqual(doc.data.map((a) => a.id), actionIds);
    for (const a of doc.data) assert.equal(a.attributes.definition.data.status, 'live', 'status cascaded');
  });

  await step('getFlowAction', async () => {
    const { body: doc } = await flows.getFlowAction(actionIds[0]);
    assert.equal(doc.data.attributes.definition.data.message.url, 'https://erp.example.net/hooks/order');
  });

  await step('deleteFlowAction', async () => {
    const { response, body: doc } = await flows.deleteFlowAction(actionIds[0]);
    assert.equal(response.status, 204);
    assert.equal(doc, undefined, 'no body');
  });

  await step('getFlow after deleteFlowAction: the next action is the entry', async () => {
    const { body: doc } = await flows.getFlow(flowId, { additionalFieldsFlow: ['definition'] });
    const def = doc.data.attributes.definition;
    assert.deepEqual(def.actions.map((a) => a.id), [actionIds[1]]);
    assert.equal(def.entryActionId, actionIds[1]);
  });

  await step('getFlowAction after delete -> 404', async () => {
    const res = await rejection(flows.getFlowAction(actionIds[0]));
    assertErrorDocument(res, 404, 'not_found');
  });

  await step('deleteFlowAction of the only action -> 409', async () => {
    const res = await rejection(flows.deleteFlowAction(actionIds[1]));
    assertErrorDocument(res, 409, 'conflict');
  });

  await step('createFlow send-email -> 400 with pointer', async () => {
    const res = await rejection(flows.createFlow({ data: { type: 'flow', attributes: { name: 'x', definition: {
      triggers: [{ type: 'metric', id: 'M' }], profileFilter: null, entryActionId: 'e',
      actions: [{ temporaryId: 'e', type: 'send-email', links: { next: null }, data: {} }],
    } } } }));
    const e = assertErrorDocument(res, 400, 'invalid');
    assert.equal(e.source?.pointer, '/data/attributes/definition/actions/0/type');
  });

  await step('createFlow on a topic outside the catalog -> 400 with pointer', async () => {
    const res = await rejection(flows.createFlow({ data: { type: 'flow', attributes: { name: 'x', definition: {
      triggers: [{ type: 'metric', id: 'event:acme.never_declared' }], profileFilter: null, entryActionId: 'e',
      actions: [{ temporaryId: 'e', type: 'send-webhook', links: { next: null },
        data: { status: 'draft', message: { name: 'n', url: 'https://x.example.net/in', headers: {}, body: '{}' } } }],
    } } } }));
    const e = assertErrorDocument(res, 400, 'invalid');
    assert.equal(e.source?.pointer, '/data/attributes/definition/triggers/0/id');
    assert.match(e.detail, /^Unknown webhook topic "event:acme\.never_declared" for this account\./);
  });

  await step('deleteFlow', async () => {
    const { response } = await flows.deleteFlow(flowId);
    assert.equal(response.status, 204);
  });

  await step('getFlow after delete -> 404', async () => {
    const res = await rejection(flows.getFlow(flowId));
    assertErrorDocument(res, 404, 'not_found');
  });
}

try {
  await main();
  await flowsMain();
  console.log('PASS klaviyo-api Node SDK contract');
} catch (err) {
  console.error(`FAIL ${current}`);
  if (err?.response) {
    const r = err.response;
    console.error(`  request:  ${r.config?.method?.toUpperCase()} ${r.request?.path ?? r.config?.url}`);
    console.error(`  response: HTTP ${r.status} ${JSON.stringify(r.data)}`);
  } else {
    console.error(`  ${err?.stack ?? err}`);
  }
  process.exitCode = 1;
}
