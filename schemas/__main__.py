"""`python -m schemas` rewrites schemas/json/ from the models."""

from schemas.jsonschema import write_all

if __name__ == "__main__":
    for path in write_all():
        print(path)
