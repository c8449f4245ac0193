import { Controller, Get, Inject, Query, Req, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { PodflowError } from '@podflow/protocol';
import { LocalDiskStore, contentTypeOf, downloadDisposition, type ObjectStore } from '@podflow/storage';
import type { Request, Response } from 'express';
import { pipeline } from 'node:stream/promises';
import { Public } from '../api/auth.guard';
import { OBJECT_STORE } from '../tokens';

/** Serves pre-signed downloads of the local-disk store. The signature is the credential. */
@ApiExcludeController()
@Controller('v1/files')
export class FilesController {
  constructor(@Inject(OBJECT_STORE) private readonly store: ObjectStore) {}

  @Public()
  @Get('*path')
  async download(@Req() request: Request, @Res() response: Response, @Query('expires') expires?: string, @Query('signature') signature?: string): Promise<void> {
    if (!(this.store instanceof LocalDiskStore)) {
      throw new PodflowError('NOT_FOUND', 'this coordinator stores files in S3 (STORAGE=s3): files are served by pre-signed S3 URLs, not by /v1/files; use a download_url from the node result or POST /v1/runs/:id/nodes/:nodeId/files/sign');
    }
    const key = decodeURIComponent(request.path.replace(/^\/v1\/files\//, ''));
    const refusal = this.store.verify(key, expires, signature);
    if (refusal) throw new PodflowError('UNAUTHENTICATED', `download refused: ${refusal}`);
    const body = await this.store.get(key);
    // A download, never a page of this origin: attachment, no sniffing, and a sandbox with no
    // sources should a browser render it anyway (a node's x.html ran its script here before).
    response.status(200).set({
      'Content-Type': contentTypeOf(key),
      'Content-Disposition': downloadDisposition(key),
      'X-Content-Type-Options': 'nosniff',
      'Content-Security-Policy': "sandbox; default-src 'none'",
      'Cache-Control': 'private, no-store',
    });
    await pipeline(body, response);
  }
}
