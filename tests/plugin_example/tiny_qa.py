"""A recipe plugin as a third party would write it: short answers to medical questions."""

import json
from pathlib import Path

from pydantic import BaseModel, Field

import medstore
from medstore.pipeline.prompts import parse_template
from medstore.recipes import Recipe, RecipeOptions, Stage, Task

PROMPT = parse_template(
    "tiny-qa/answer",
    "## system\nYou answer medical questions briefly.\n"
    "## user\nQuestion: $question\nReply in JSON with `answer` and `confidence` (0 to 1).",
)


class Answer(BaseModel):
    answer: str = Field(min_length=3)
    confidence: float = Field(ge=0, le=1)


class TinyQAOptions(RecipeOptions):
    min_confidence: float = Field(0.5, ge=0, le=1, description="Lowest confidence kept.")


def confident_enough(answer: Answer, variables: dict) -> list[str]:
    floor = variables["min_confidence"]
    return [] if answer.confidence >= floor else [f"confidence: below {floor}"]


class TinyQARecipe(Recipe):
    name = "tiny-qa"
    description = "Short answers to medical questions"
    Options = TinyQAOptions
    stages = (Stage("answer", PROMPT, 0.2, Answer, 200, validators=(confident_enough,)),)

    def read_source(self, source):
        for item in json.loads(Path(source).read_text()):
            yield Task(self.task_key(item["id"]), item["id"], item)

    async def run(self, task, ctx):
        variables = {"question": task.record["question"], **self.options.model_dump()}
        answer = await ctx.generate(self.stage("answer"), variables)
        return {"question": task.record["question"], **answer.model_dump()}


@medstore.hookimpl
def register_recipes(register):
    register(TinyQARecipe)
