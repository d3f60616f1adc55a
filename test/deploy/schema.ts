// A small JSON Schema checker (the keywords the schemas here use) and the schema of
// Metacontroller's DecoratorController (metacontroller.k8s.io/v1alpha1), which the
// Kubernetes models do not know. Unlike those models it refuses unknown fields.

export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  enum?: unknown[];
  pattern?: string;
  minItems?: number;
  minLength?: number;
  minimum?: number;
  /** Exactly one of these properties must be present. */
  oneOfRequired?: string[];
}

/** Every violation, as "path: problem"; empty when `value` conforms. */
export function violations(schema: Schema, value: unknown, path = '$'): string[] {
  const out: string[] = [];
  const typeOf = (v: unknown) =>
    Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : v === null ? 'null' : typeof v;
  if (schema.type !== undefined) {
    const t = typeOf(value);
    const ok = t === schema.type || (schema.type === 'number' && t === 'integer');
    if (!ok) return [`${path}: is ${t}, want ${schema.type}`];
  }
  if (schema.enum && !schema.enum.includes(value)) {
    out.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  }
  if (typeof value === 'string') {
    if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value)) {
      out.push(`${path}: ${JSON.stringify(value)} does not match ${schema.pattern}`);
    }
    if (schema.minLength !== undefined && value.length < schema.minLength) {
      out.push(`${path}: shorter than ${schema.minLength}`);
    }
  }
  if (typeof value === 'number' && schema.minimum !== undefined && value < schema.minimum) {
    out.push(`${path}: below ${schema.minimum}`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) {
      out.push(`${path}: fewer than ${schema.minItems} items`);
    }
    if (schema.items)
      value.forEach((v, i) => out.push(...violations(schema.items!, v, `${path}[${i}]`)));
  }
  if (typeOf(value) === 'object') {
    const obj = value as Record<string, unknown>;
    for (const key of schema.required ?? []) {
      if (!(key in obj)) out.push(`${path}: missing ${key}`);
    }
    if (schema.oneOfRequired) {
      const present = schema.oneOfRequired.filter((k) => k in obj);
      if (present.length !== 1)
        out.push(`${path}: needs exactly one of ${schema.oneOfRequired.join(', ')}`);
    }
    for (const [key, v] of Object.entries(obj)) {
      const sub = schema.properties?.[key];
      if (sub) out.push(...violations(sub, v, `${path}.${key}`));
      else if (schema.additionalProperties === false) out.push(`${path}: unknown field ${key}`);
      else if (typeof schema.additionalProperties === 'object') {
        out.push(...violations(schema.additionalProperties, v, `${path}.${key}`));
      }
    }
  }
  return out;
}

const str: Schema = { type: 'string', minLength: 1 };
const stringMap: Schema = { type: 'object', additionalProperties: { type: 'string' } };
const labelSelector: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    matchLabels: stringMap,
    matchExpressions: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['key', 'operator'],
        properties: {
          key: str,
          operator: { enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] },
          values: { type: 'array', items: { type: 'string' } },
        },
      },
    },
  },
};
const hook: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    webhook: {
      type: 'object',
      additionalProperties: false,
      oneOfRequired: ['url', 'service'],
      properties: {
        url: { type: 'string', pattern: '^https?://[^/\\s]+(/\\S*)?$' },
        timeout: { type: 'string', pattern: '^[0-9]+(ms|s|m)$' },
        path: { type: 'string', pattern: '^/' },
        service: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'namespace'],
          properties: {
            name: str,
            namespace: str,
            port: { type: 'integer', minimum: 1 },
            protocol: { enum: ['http', 'https'] },
          },
        },
      },
    },
  },
  required: ['webhook'],
};
const resourceRule: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'resource'],
  properties: {
    apiVersion: { type: 'string', pattern: '^([a-z0-9.-]+/)?v[0-9]+((alpha|beta)[0-9]+)?$' },
    resource: { type: 'string', pattern: '^[a-z0-9.-]+$' },
    labelSelector,
    annotationSelector: labelSelector,
    updateStrategy: {
      type: 'object',
      additionalProperties: false,
      properties: {
        method: { enum: ['OnDelete', 'Recreate', 'InPlace', 'RollingRecreate', 'RollingInPlace'] },
      },
    },
  },
};

/** metacontroller.k8s.io/v1alpha1 DecoratorController, from the project's CRD and docs. */
export const DECORATOR_CONTROLLER: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { enum: ['metacontroller.k8s.io/v1alpha1'] },
    kind: { enum: ['DecoratorController'] },
    metadata: {
      type: 'object',
      required: ['name'],
      properties: {
        // Cluster-scoped: a namespace here would be a mistake.
        name: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$' },
        labels: stringMap,
        annotations: stringMap,
      },
      additionalProperties: false,
    },
    spec: {
      type: 'object',
      additionalProperties: false,
      required: ['resources', 'hooks'],
      properties: {
        resources: { type: 'array', minItems: 1, items: resourceRule },
        attachments: { type: 'array', items: resourceRule },
        resyncPeriodSeconds: { type: 'integer', minimum: 1 },
        hooks: {
          type: 'object',
          additionalProperties: false,
          required: ['sync'],
          properties: { sync: hook, finalize: hook, customize: hook },
        },
      },
    },
  },
};
