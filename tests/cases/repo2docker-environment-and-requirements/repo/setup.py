from setuptools import find_packages, setup

setup(name="climate-tools", version="0.1", packages=find_packages())
