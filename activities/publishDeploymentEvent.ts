/** Activity: publish an outbound event (Service Bus topic when configured, else the log). */
import * as df from 'durable-functions';
import { asThrowable } from '../shared/batch/activity-io';
import type { DeploymentEvent } from '../shared/events';
import { getAppServices } from '../shared/services/app';

df.app.activity('publishDeploymentEvent', {
  handler: async (event: DeploymentEvent): Promise<string> => {
    try {
      return (await getAppServices().events.publish(event)).id;
    } catch (e) {
      throw asThrowable(e);
    }
  },
});
