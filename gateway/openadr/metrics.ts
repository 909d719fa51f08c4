// The VEN's metrics, in the gateway's registry (served at GET /metrics; docs/operator.md "Monitoring").
// They exist whether or not a VTN is configured, so that alert rules naming them always resolve.

import { Counter, Gauge, type Registry } from 'prom-client';

export interface OpenAdrMetrics {
  errors: Counter<'vtn' | 'kind'>;
  up: Gauge<'vtn'>;
  events: Gauge<'vtn'>;
  reports: Counter<'vtn'>;
}

export function openAdrMetrics(registry: Registry): OpenAdrMetrics {
  const registers = [registry];
  return {
    errors: new Counter({
      name: 'gridlet_openadr_errors_total',
      help: 'OpenADR VTN failures by VTN and kind (unreachable, timeout, auth, server, http, json, schema, event, report, internal).',
      labelNames: ['vtn', 'kind'], registers,
    }),
    up: new Gauge({ name: 'gridlet_openadr_vtn_up', help: 'Whether the last poll of the VTN worked (1) or failed (0).', labelNames: ['vtn'], registers }),
    events: new Gauge({ name: 'gridlet_openadr_events', help: 'Events of the VTN the gateway follows (gone ones aside).', labelNames: ['vtn'], registers }),
    reports: new Counter({ name: 'gridlet_openadr_reports_total', help: 'Reports posted or replaced on the VTN.', labelNames: ['vtn'], registers }),
  };
}
