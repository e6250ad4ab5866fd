"""The cache dependencies tests' models; the database-level on_delete ones only on Django 6.1+."""

import django.db.models.deletion
from django.db import migrations, models


def id_field() -> tuple[str, models.Field]:  # a fresh field for each model
    return "id", models.BigAutoField(
        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
    )


operations = [
    migrations.CreateModel(
        name="SaleSummary",
        fields=[id_field(), ("sales", models.IntegerField()), ("total", models.IntegerField())],
        options={"db_table": "testapp_salesummary", "managed": False},
    ),
    migrations.CreateModel(
        name="Chef", fields=[id_field(), ("name", models.CharField(max_length=100))]
    ),
    migrations.CreateModel(
        name="Place", fields=[id_field(), ("name", models.CharField(max_length=100))]
    ),
    migrations.CreateModel(name="Sale", fields=[id_field(), ("amount", models.IntegerField())]),
    migrations.CreateModel(
        name="SaleTotal", fields=[id_field(), ("total", models.IntegerField(default=0))]
    ),
    migrations.CreateModel(
        name="Restaurant",
        fields=[
            (
                "place_ptr",
                models.OneToOneField(
                    auto_created=True,
                    on_delete=django.db.models.deletion.CASCADE,
                    parent_link=True,
                    primary_key=True,
                    serialize=False,
                    to="testapp.place",
                ),
            ),
            ("serves_pizza", models.BooleanField(default=False)),
            (
                "chef",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.CASCADE,
                    related_name="restaurants",
                    to="testapp.chef",
                ),
            ),
        ],
        bases=("testapp.place",),
    ),
    migrations.CreateModel(
        name="Guide",
        fields=[
            id_field(),
            ("name", models.CharField(max_length=100)),
            (
                "restaurants",
                models.ManyToManyField(blank=True, related_name="guides", to="testapp.restaurant"),
            ),
        ],
    ),
    migrations.CreateModel(
        name="Dish",
        fields=[
            id_field(),
            ("name", models.CharField(max_length=100)),
            (
                "restaurant",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE,
                    related_name="dishes",
                    to="testapp.restaurant",
                ),
            ),
        ],
    ),
    migrations.CreateModel(
        name="Pizzeria",
        fields=[],
        options={"proxy": True, "indexes": [], "constraints": []},
        bases=("testapp.restaurant",),
    ),
    migrations.CreateModel(
        name="Booking",
        fields=[
            id_field(),
            (
                "restaurant",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE,
                    related_name="bookings",
                    to="testapp.restaurant",
                ),
            ),
            (
                "pizzeria",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.CASCADE,
                    related_name="pizza_bookings",
                    to="testapp.pizzeria",
                ),
            ),
        ],
    ),
]

if hasattr(models, "DB_CASCADE"):  # Django 6.1+ only, like these models in models.py
    deletion = django.db.models.deletion
    operations += [
        migrations.CreateModel(
            name="Shelf", fields=[id_field(), ("name", models.CharField(max_length=100))]
        ),
        migrations.CreateModel(
            name="ShelfItem",
            fields=[
                id_field(),
                (
                    "shelf",
                    models.ForeignKey(
                        on_delete=deletion.DB_CASCADE, related_name="items", to="testapp.shelf"
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="ItemLabel",
            fields=[
                id_field(),
                (
                    "item",
                    models.ForeignKey(
                        on_delete=deletion.DB_CASCADE, related_name="labels", to="testapp.shelfitem"
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="ShelfNote",
            fields=[
                id_field(),
                (
                    "shelf",
                    models.ForeignKey(
                        null=True,
                        on_delete=deletion.DB_SET_NULL,
                        related_name="notes",
                        to="testapp.shelf",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="ShelfSign",
            fields=[
                id_field(),
                (
                    "shelf",
                    models.ForeignKey(
                        db_default=None,
                        null=True,
                        on_delete=deletion.DB_SET_DEFAULT,
                        related_name="signs",
                        to="testapp.shelf",
                    ),
                ),
            ],
        ),
    ]


class Migration(migrations.Migration):
    dependencies = [("testapp", "0003_differential_models")]

    operations = operations
