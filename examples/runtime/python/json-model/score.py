# JSON in, JSON out, model located with Model.get_model_path (the seed guide's first entry script,
# with a JSON linear model instead of a scikit-learn pickle so it runs on the standard library).
import json
import os

from azureml.core.model import Model


def init():
    global model
    # retrieve the path to the model file using the model name
    model_path = Model.get_model_path('linear')
    with open(model_path) as f:
        model = json.load(f)
    print("model loaded from " + os.path.basename(model_path))


# Passes data to the model and returns the prediction
def run(raw_data):
    data = json.loads(raw_data)['data']
    y_hat = [sum(c * x for c, x in zip(model['coef'], row)) + model['intercept'] for row in data]
    return json.dumps(y_hat)
