/** Activity: publish an outbound event (Service Bus topic when configured, else the log). */
import { DEPLOY } from '../shared/deploy/contract';
import { getAppServices } from '../shared/services/app';
import { registerActivity } from '../shared/workflow';

registerActivity(DEPLOY.publishEvent, async (event) => {
  return (await getAppServices().events.publish(event)).id;
});
