// Checks that a principal's tenant id can be written as a literal of the policy's tenant column type.
import type { TenantType } from './schema';

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

export function tenantFitsType(tenantId: string, type: TenantType): boolean {
  switch (type) {
    case 'integer':
      return /^-?\d{1,10}$/.test(tenantId) && Math.abs(Number(tenantId)) <= 2 ** 31 - 1;
    case 'bigint':
      return /^-?\d{1,19}$/.test(tenantId) && BigInt(tenantId) <= 2n ** 63n - 1n && BigInt(tenantId) >= -(2n ** 63n);
    case 'uuid':
      return UUID.test(tenantId);
    case 'text':
      return tenantId.length > 0 && !tenantId.includes('\0');
  }
}
