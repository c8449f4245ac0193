import { Controller, Get, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { TenantId } from '../api/auth.guard';
import { SIGNATURE_HEADER } from '@podflow/protocol';
import { WebhookSecrets } from './webhook-secrets';

/** The caller's tenant's webhook signing secret: what its receivers verify `podflow-signature` with. */
@ApiTags('webhooks')
@ApiBearerAuth()
@Controller('v1/webhooks')
export class WebhooksController {
  constructor(private readonly secrets: WebhookSecrets) {}

  @Get('secret')
  @ApiOperation({ summary: "The tenant's webhook signing secret (created on first use); receivers check podflow-signature with it" })
  async secret(@TenantId() tenantId: string) {
    return { secret: await this.secrets.current(tenantId), header: SIGNATURE_HEADER };
  }

  @Post('secret/rotate')
  @HttpCode(200)
  @ApiOperation({ summary: 'A new signing secret; deliveries are signed with the previous one too for 24 hours' })
  rotate(@TenantId() tenantId: string) {
    return this.secrets.rotate(tenantId);
  }
}
