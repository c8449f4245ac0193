import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { TenantId } from '../api/auth.guard';
import { UsageStore, usageRange } from './usage';

@ApiTags('usage')
@ApiBearerAuth()
@Controller('v1/usage')
export class UsageController {
  constructor(private readonly usage: UsageStore) {}

  @Get()
  @ApiOperation({ summary: "The caller's tenant's usage, hourly: executions (succeeded, failed), execution ms, files and bytes; ?from=&to= (ISO or epoch ms, default the last 24 h)" })
  get(@TenantId() tenantId: string, @Query('from') from?: string, @Query('to') to?: string) {
    const range = usageRange(from, to);
    return this.usage.usage(tenantId, range.from, range.to);
  }
}
