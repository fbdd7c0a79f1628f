from django.apps import AppConfig


class CategoriesConfig(AppConfig):
    name = "apps.categories"
    verbose_name = "Fee categories"
